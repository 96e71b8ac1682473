import FerryTestSupport
import LiveUpdateReports
import Testing
import UpdateTimeline

@Suite struct TimelineSVGTests {
    /// Well-formed XML (xmllint, from libxml2-utils), with one bar group per service.
    @Test func wellFormedWithOneBarPerService() throws {
        var record = Samples.record(units: ["db.service", "a&b<c>.service", "vmm.service"])
        record.failure = "quotes \" and ' and control \u{1} characters"
        let svg = TimelineSVG.render(record)
        #expect(try XML.isWellFormed(svg))
        #expect(svg.components(separatedBy: "<g class=\"service\"").count - 1 == 3)
        #expect(svg.components(separatedBy: "<g class=\"phase\"").count - 1 == 6)
        #expect(svg.contains("data-unit=\"a&amp;b&lt;c&gt;.service\""))
    }

    @Test func aRolledBackUpdateDrawsItsStopsOnly() throws {
        var update = Samples.update()
        update.failure = "reboot: EIO"
        let svg = TimelineSVG.render(UpdateRecord(failed: update, rolledBack: true, kexecCount: 0, id: "x"))
        #expect(try XML.isWellFormed(svg))
        #expect(svg.components(separatedBy: "<g class=\"service\"").count - 1 == 2)
        #expect(svg.contains("failure: reboot: EIO"))
        #expect(svg.contains("started again by the rollback"))
    }
}
