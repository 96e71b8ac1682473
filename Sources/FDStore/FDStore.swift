import FerrySystem
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// One unit's file descriptor store, with systemd's rules (reference-systemd.md §3): a limit,
/// names, refusal of the same open file twice, optional removal on POLLHUP/POLLERR, newest first.
///
/// The store owns every descriptor in it, each with its poll watch; an entry that is removed and
/// let go closes its descriptor and ends its watch.
public final class FDStore {
    /// One stored descriptor.
    public final class Entry {
        public let id: UInt64
        public let name: String
        /// Watch for POLLHUP/POLLERR and drop the entry when they come (FDPOLL=0 turns it off).
        public let poll: Bool
        public let key: FileKey
        /// A regular file (every memfd): epoll refuses it (EPERM), so it gets no poll watch.
        public let isRegularFile: Bool
        /// The raw number, owned by this entry.
        public let fd: CInt
        /// The POLLHUP/POLLERR watch on `fd`, owned with it: cancelled before the fd closes.
        public var pollWatch: EventLoop.Watch?
        /// The manager above holds a copy (nested managers): dropped when this entry goes.
        public var upstreamCopy: UpstreamCopy?

        init(id: UInt64, name: String, poll: Bool, key: FileKey, isRegularFile: Bool, fd: consuming OwnedFD) {
            self.id = id
            self.name = name
            self.poll = poll
            self.key = key
            self.isRegularFile = isRegularFile
            self.fd = fd.release()
        }

        deinit {
            // Cancelled first: epoll keeps reporting a closed fd whose file another process holds.
            pollWatch?.cancel()
            Glibc.close(fd)
        }

        public var descriptor: FileDescriptor { FileDescriptor(rawValue: fd) }
    }

    public enum AddResult: Equatable, Sendable {
        case added(id: UInt64)
        /// The same open file description is already stored: dropped silently, as systemd does.
        case duplicate
        /// The store is at its limit (EXFULL); the descriptor was closed.
        case full
    }

    /// FileDescriptorStoreMax=.
    public var limit: Int
    /// Oldest first, so that adding is an append: a restore or a flood of FDSTORE=1 into one
    /// store of thousands would otherwise move every entry for every fd.
    public private(set) var inStoredOrder: [Entry] = []
    /// Newest first, the order LISTEN_FDS hands them out (a copy: for a whole pass, not a lookup).
    public var entries: [Entry] { inStoredOrder.reversed() }
    /// The entry added last.
    public var newest: Entry? { inStoredOrder.last }
    /// The entries of each file, for the duplicate rule: the first in a dictionary of its own, so
    /// that the usual store (one entry per file) allocates no array per entry; further open files
    /// of the same inode (separate `open()`s, not duplicates) in the rare second one.
    private var firstOfFile: [FileKey: Entry] = [:]
    private var moreOfFile: [FileKey: [Entry]] = [:]
    private static let ids = IDSource()

    public init(limit: Int) { self.limit = limit }

    public var count: Int { inStoredOrder.count }
    public var isEmpty: Bool { inStoredOrder.isEmpty }

    /// Adds `fd` (always consumed: stored, or closed when full or a duplicate).
    ///
    /// - Throws: when the descriptor cannot even be examined (fstat fails).
    /// - Parameter status: the fd's fstat, if the caller made it already (else made here).
    public func add(_ fd: consuming OwnedFD, name: String, poll: Bool = true, status given: stat? = nil) throws(SystemCallError) -> AddResult {
        let status: stat
        if let given { status = given } else { status = try FileIdentity.stat(fd.borrowed) }
        let key = FileKey(device: UInt64(status.st_dev), inode: UInt64(status.st_ino))
        if inStoredOrder.count >= limit { return .full }
        if holds(sameOpenFileAs: fd.borrowed, key: key) { return .duplicate }
        let entry = Entry(id: Self.ids.next(), name: name, poll: poll, key: key,
                          isRegularFile: status.st_mode & S_IFMT == S_IFREG, fd: fd)
        inStoredOrder.append(entry)
        if firstOfFile[key] == nil { firstOfFile[key] = entry } else { moreOfFile[key, default: []].append(entry) }
        return .added(id: entry.id)
    }

    /// Whether the store holds `fd`'s open file description already.
    public func holds(sameOpenFileAs fd: FileDescriptor) -> Bool {
        guard let status = try? FileIdentity.stat(fd) else { return false }
        return holds(sameOpenFileAs: fd, key: FileKey(device: UInt64(status.st_dev), inode: UInt64(status.st_ino)))
    }

    private func holds(sameOpenFileAs fd: FileDescriptor, key: FileKey) -> Bool {
        guard let first = firstOfFile[key] else { return false }
        func same(_ entry: Entry) -> Bool { (try? FileIdentity.sameOpenFile(fd, entry.descriptor)) ?? false }
        return same(first) || (moreOfFile[key] ?? []).contains(where: same)
    }

    /// Removes every entry called `name` (names are not unique); returns them (closed when dropped).
    @discardableResult
    public func remove(named name: String) -> [Entry] {
        let removed = inStoredOrder.reversed().filter { $0.name == name }
        for entry in removed { forget(entry) }
        return removed
    }

    /// Removes the entry `id` (e.g. after POLLHUP).
    @discardableResult
    public func remove(id: UInt64) -> Entry? {
        guard let entry = inStoredOrder.last(where: { $0.id == id }) else { return nil }
        forget(entry)
        return entry
    }

    /// Empties the store; returns what it held.
    @discardableResult
    public func removeAll() -> [Entry] {
        let all = entries
        inStoredOrder = []
        firstOfFile = [:]
        moreOfFile = [:]
        return all
    }

    /// Drops the newest entries beyond `limit` (systemd's truncation when a real limit arrives).
    @discardableResult
    public func truncate(to newLimit: Int) -> [Entry] {
        limit = newLimit
        guard inStoredOrder.count > newLimit else { return [] }
        let excess = Array(inStoredOrder.suffix(inStoredOrder.count - newLimit).reversed())
        for entry in excess { forget(entry) }
        return excess
    }

    /// Searched from the newest: the one just added is found at once.
    public func entry(id: UInt64) -> Entry? { inStoredOrder.last { $0.id == id } }

    private func forget(_ entry: Entry) {
        inStoredOrder.removeAll { $0 === entry }
        if firstOfFile[entry.key] === entry {
            // The next open file of the inode, if any, takes its place.
            if var others = moreOfFile[entry.key], !others.isEmpty {
                firstOfFile[entry.key] = others.removeFirst()
                moreOfFile[entry.key] = others.isEmpty ? nil : others
            } else {
                firstOfFile[entry.key] = nil
            }
        } else {
            moreOfFile[entry.key]?.removeAll { $0 === entry }
            if moreOfFile[entry.key]?.isEmpty == true { moreOfFile[entry.key] = nil }
        }
    }
}

/// Unique entry ids across every store of the process.
final class IDSource: @unchecked Sendable {
    private var value: UInt64 = 0
    func next() -> UInt64 {
        value += 1
        return value
    }
}

/// The fd names the notify protocol accepts (sd_notify FDNAME=).
public enum FDName {
    public static let defaultName = "stored"
    public static let maximumLength = 255

    /// Printable ASCII without ':' and at most 255 bytes; empty is allowed.
    public static func isValid(_ name: String) -> Bool {
        name.utf8.count <= maximumLength && name.utf8.allSatisfy { $0 >= 0x20 && $0 <= 0x7E && $0 != UInt8(ascii: ":") }
    }
}

/// FileDescriptorStorePreserve=.
public enum PreserveMode: String, Sendable, Codable, CaseIterable {
    case no
    case restart
    case yes
    case onSuccess = "on-success"

    /// Only these stores outlive the unit's process and ride a live update.
    public var outlivesProcess: Bool { self == .yes || self == .onSuccess }
}
