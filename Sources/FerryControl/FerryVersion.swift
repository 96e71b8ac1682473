/// Ferry's version, as every tool and the control interface report it.
public enum FerryVersion {
    public static let current = "0.1.0"
}
