/// An fd (or a whole store) that a live update did not carry, with a reason code that metrics and
/// scripts can count and the text an operator reads (unit, fd name, errno).
public struct LiveUpdateLoss: Codable, Sendable, Equatable {
    /// Why, as a stable code (a metrics label value).
    public enum Reason: String, Codable, Sendable, CaseIterable {
        /// FileDescriptorStorePreserve=no|restart: not meant to cross a kexec (not counted as lost).
        case preserveMode = "preserve_mode"
        /// A stored LUO session whose name could not be read.
        case sessionUnreadable = "session_unreadable"
        /// A stored session named like Ferry's own; dropped.
        case namespaceClash = "namespace_clash"
        /// PRESERVE_FD failed (ENOMEM, a full session, an fd LUO cannot carry).
        case preserveFailed = "preserve_failed"
        /// X-FerryFDGroup=: another member of its group could not be preserved, so none was.
        case groupIncomplete = "group_incomplete"
        /// Nested: the manager above held no copy of it.
        case notHeldAbove = "not_held_above"
        /// After the kexec: RETRIEVE_FD or RETRIEVE_SESSION failed.
        case retrieveFailed = "retrieve_failed"
        /// After the kexec: its unit's store refused it (limit, duplicate).
        case storeRefused = "store_refused"
        /// Preserved before the kexec, but not found again after it (e.g. an unreadable mapping).
        case notRestored = "not_restored"
    }

    public var unit: String
    /// nil when the whole store is meant (`count` fds).
    public var name: String?
    public var count: Int
    public var reason: Reason
    public var detail: String

    public init(unit: String, name: String?, count: Int = 1, reason: Reason, detail: String) {
        self.unit = unit
        self.name = name
        self.count = count
        self.reason = reason
        self.detail = detail
    }

    /// Whether the configuration asked for this fd to cross the kexec (so losing it is a loss).
    public var wasMeantToCross: Bool { reason != .preserveMode }
}

/// Every key always written, null when unknown (see UpdateRecord's encoding).
extension LiveUpdateLoss {
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(unit, forKey: .unit)
        try container.encode(name, forKey: .name)
        try container.encode(count, forKey: .count)
        try container.encode(reason, forKey: .reason)
        try container.encode(detail, forKey: .detail)
    }
}
