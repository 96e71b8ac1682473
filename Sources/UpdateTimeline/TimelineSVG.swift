import LiveUpdateReports

/// One live update drawn as a timeline, in the manner of `systemd-analyze plot`: the phases on
/// top, then one bar per service from its stop to ready again, on one time axis from the moment
/// the update began stopping units. Plain SVG 1.1 that any browser shows.
public enum TimelineSVG {
    public static func render(_ record: UpdateRecord) -> String {
        let layout = TimelineLayout(record)
        var svg = SVGWriter(width: layout.width, height: layout.height)
        header(record, &svg)
        axis(layout, &svg)
        for (row, phase) in record.phases.enumerated() { phaseBar(phase, row: row, layout, &svg) }
        for (row, service) in record.services.enumerated() {
            serviceBar(service, row: row, rolledBack: record.outcome == .rolledBack, layout, &svg)
        }
        legend(layout, &svg)
        return svg.finish()
    }

    private static func header(_ record: UpdateRecord, _ svg: inout SVGWriter) {
        let title = "Live update \(record.id): \(record.outcome.rawValue)\(record.rehearsal ? " (rehearsal)" : "")"
        svg.text(title, x: 16, y: 26, size: 18, weight: "bold")
        var facts = ["kernel \(record.kernelBefore ?? "?") → \(record.kernelAfter ?? (record.outcome == .succeeded ? "?" : "(not left)"))",
                     "began \(record.startedAt)"]
        if let blackout = record.blackoutUs { facts.append("blackout \(TimelineLayout.milliseconds(blackout)) ms") }
        facts.append("\(record.servicesBack)/\(record.services.count) services back")
        facts.append("\(record.carriedCount) fds carried, \(record.lostCount) lost")
        svg.text(facts.joined(separator: "  ·  "), x: 16, y: 48, size: 13)
        if let failure = record.failure { svg.text("failure: \(failure)", x: 16, y: 66, size: 13, fill: "#b00020") }
    }

    private static func axis(_ layout: TimelineLayout, _ svg: inout SVGWriter) {
        for tick in layout.ticks() {
            let x = layout.x(tick)
            svg.line(x1: x, y1: layout.top - 6, x2: x, y2: layout.bottom, stroke: "#dddddd")
            svg.text("\(TimelineLayout.milliseconds(tick)) ms", x: x, y: layout.top - 10, size: 11, anchor: "middle", fill: "#555555")
        }
        svg.text("phases", x: 16, y: layout.rowY(0) - 6, size: 12, weight: "bold", fill: "#555555")
        svg.text("services (stop → ready)", x: 16, y: layout.serviceY(0) - 6, size: 12, weight: "bold", fill: "#555555")
    }

    private static func phaseBar(_ phase: UpdateRecord.Phase, row: Int, _ layout: TimelineLayout, _ svg: inout SVGWriter) {
        let y = layout.rowY(row)
        let x = layout.x(phase.startUs)
        let width = max(1, layout.x(phase.startUs + phase.durationUs) - x)
        let name = phase.name == "ready" ? "first ready" : phase.name
        let label = "\(name) \(TimelineLayout.milliseconds(phase.durationUs)) ms"
        svg.open("g", ["class": "phase", "data-phase": phase.name])
        svg.element("title", text: label)
        svg.text(name, x: 16, y: y + 14, size: 12)
        svg.rect(x: x, y: y + 2, width: width, height: layout.barHeight, fill: Palette.phase(phase.name))
        svg.text(label, x: x + width + 4, y: y + 14, size: 11, fill: "#333333")
        svg.close("g")
    }

    private static func serviceBar(_ service: UpdateRecord.Service, row: Int, rolledBack: Bool, _ layout: TimelineLayout,
                                   _ svg: inout SVGWriter) {
        let y = layout.serviceY(row)
        svg.open("g", ["class": "service", "data-unit": service.unit])
        svg.element("title", text: serviceTitle(service))
        let fine = service.back || rolledBack
        svg.text(service.unit, x: 16, y: y + 14, size: 12, fill: fine ? "#000000" : "#b00020")
        let stopped = service.stoppedUs ?? 0
        svg.rect(x: layout.x(0), y: y + 2, width: max(1, layout.x(stopped) - layout.x(0)), height: layout.barHeight,
                 fill: Palette.stopping)
        var end = stopped
        if let started = service.startedUs {
            svg.rect(x: layout.x(stopped), y: y + 8, width: max(0, layout.x(started) - layout.x(stopped)), height: 6,
                     fill: Palette.down)
            let ready = service.readyUs ?? started
            svg.rect(x: layout.x(started), y: y + 2, width: max(1, layout.x(ready) - layout.x(started)),
                     height: layout.barHeight, fill: Palette.starting)
            end = ready
        }
        let note = service.back ? "\(TimelineLayout.milliseconds(service.readyUs ?? 0)) ms"
            : rolledBack ? "started again by the rollback"
            : service.failed ? "failed" : service.startedUs == nil ? "not started" : "not ready"
        svg.text(note, x: layout.x(end) + 4, y: y + 14, size: 11, fill: fine ? "#333333" : "#b00020")
        svg.close("g")
    }

    private static func serviceTitle(_ service: UpdateRecord.Service) -> String {
        var parts = [service.unit]
        if let stopped = service.stoppedUs { parts.append("down at \(TimelineLayout.milliseconds(stopped)) ms") }
        if let started = service.startedUs { parts.append("started at \(TimelineLayout.milliseconds(started)) ms") }
        if let ready = service.readyUs { parts.append("ready at \(TimelineLayout.milliseconds(ready)) ms (its blackout)") }
        if service.failed { parts.append("failed") }
        return parts.joined(separator: ", ")
    }

    private static func legend(_ layout: TimelineLayout, _ svg: inout SVGWriter) {
        let y = layout.height - 22
        var x = 16.0
        for (label, color) in [("stopping", Palette.stopping), ("down (kexec, restore)", Palette.down),
                               ("starting until ready", Palette.starting)] {
            svg.rect(x: x, y: y - 10, width: 14, height: 12, fill: color)
            svg.text(label, x: x + 20, y: y, size: 12)
            x += 40 + Double(label.count) * 7
        }
    }
}

/// The colours, one per kind of bar.
enum Palette {
    static let stopping = "#e39b3b"
    static let down = "#c8c8c8"
    static let starting = "#3d7fd0"

    static func phase(_ name: String) -> String {
        switch name {
        case "stop": "#e39b3b"
        case "serialize": "#b57edc"
        case "preserve": "#8e5bb5"
        case "kexec": "#7a7a7a"
        case "restore": "#3fa36b"
        default: "#3d7fd0"
        }
    }
}
