import FerryTestSupport
import Testing

extension Trait where Self == ConditionTrait {
    /// Runs the test only where `prerequisite` is installed; elsewhere it is skipped with one line
    /// saying what to install (never a failure or a timeout).
    static func needs(_ prerequisite: Prerequisite) -> Self {
        .enabled(if: prerequisite.isPresent, Comment(rawValue: prerequisite.skipNote))
    }
}
