import FerryJSON
import FerrySystem

/// What a keeper holds: one fd per item, and the update's state as ferryd last gave it.
///
/// Owns every fd: they close when an item is forgotten or when the value goes away (the keeper
/// exits). A session is filed under its name: holding a session again replaces the older copy
/// (both name the same open file, so the session never closes in between).
struct KeeperHoldings: ~Copyable {
    private(set) var items: [KeeperWire.Item] = []
    private var fds = OwnedFDs()
    var state: [String: JSONValue] = [:]

    var count: Int { items.count }

    /// The raw numbers, still owned here, in the order of `items`.
    var descriptors: [CInt] { fds.rawValues }

    mutating func hold(_ item: KeeperWire.Item, _ fd: consuming OwnedFD) {
        if item.kind == .session {
            forget { $0.kind == .session && $0.name == item.name }
        }
        items.append(item)
        fds.append(fd)
    }

    /// Drops (closes) every item `matches` picks; returns how many.
    @discardableResult
    mutating func forget(_ matches: (KeeperWire.Item) -> Bool) -> Int {
        var keptItems: [KeeperWire.Item] = []
        var keptFDs = OwnedFDs()
        var dropped = 0
        for (index, item) in items.enumerated() {
            guard let fd = fds.take(at: index) else { continue }
            if matches(item) {
                dropped += 1
                _ = consume fd
            } else {
                keptItems.append(item)
                keptFDs.append(fd)
            }
        }
        items = keptItems
        fds = keptFDs
        return dropped
    }

    /// "3 store fd(s), 2 session(s)".
    var summary: String {
        let stores = items.filter { $0.kind == .store }.count
        return "\(stores) store fd(s), \(items.count - stores) session(s)"
    }
}
