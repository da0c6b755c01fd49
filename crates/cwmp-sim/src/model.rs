//! The CPE models of the simulated fleet, each with the wire habits of a real vendor
//! (see the provenance of the acceptance corpus, `SOURCES.md`).

/// The data model a device reports under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    /// TR-098 `InternetGatewayDevice.`
    Tr098,
    /// TR-181 `Device.`
    Tr181,
}

impl Root {
    pub fn prefix(self) -> &'static str {
        match self {
            Root::Tr098 => "InternetGatewayDevice.",
            Root::Tr181 => "Device.",
        }
    }
}

/// How a model's `arrayType` attributes look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayType {
    /// `cwmp:EventStruct[2]`
    Exact,
    /// `cwmp:EventStruct[02]` (Thomson)
    ZeroPadded,
    /// No attribute at all.
    Missing,
}

/// A vendor's way of writing an Inform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireStyle {
    /// Prefix of the SOAP envelope namespace.
    pub env: &'static str,
    /// Prefix of the SOAP encoding namespace.
    pub enc: &'static str,
    /// Prefix of the CWMP namespace.
    pub cwmp: &'static str,
    /// `<?xml ...?>` first.
    pub xml_decl: bool,
    /// A `cwmp:ID` header.
    pub header: bool,
    pub array_type: ArrayType,
    /// Indentation (and newlines) between elements.
    pub indent: bool,
    /// CRLF line ends.
    pub crlf: bool,
    /// Attribute quote character.
    pub quote: char,
    /// `xsi:type` on values.
    pub xsi_types: bool,
}

/// A product line.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    pub manufacturer: &'static str,
    pub oui: &'static str,
    pub product_class: &'static str,
    pub root: Root,
    pub style: WireStyle,
    /// Firmware versions in the field, the first the most common.
    pub software_versions: &'static [&'static str],
    pub hardware_version: &'static str,
    /// Share of the fleet.
    pub weight: u32,
    /// Periodic inform interval, seconds.
    pub periodic_s: i64,
    /// Whether its Informs carry `…ManagementServer.PeriodicInformInterval` (the
    /// ACS made it a forced inform parameter): the detectors then know the cadence
    /// at once instead of learning it from the gaps.
    pub carries_interval: bool,
    /// Wakes up (`13 WAKEUP`) once per this many seconds by design; 0 = never.
    pub wakeup_s: i64,
    /// Serial number prefix.
    pub serial_prefix: &'static str,
}

/// The default catalog: home gateways under TR-098, a TR-181 router, and a small
/// cell that wakes up hourly by design.
pub fn catalog() -> Vec<Model> {
    vec![
        Model {
            manufacturer: "Huawei Technologies Co., Ltd.",
            oui: "00E0FC",
            product_class: "HG8245H",
            root: Root::Tr098,
            style: WireStyle {
                env: "SOAP-ENV",
                enc: "SOAP-ENC",
                cwmp: "cwmp",
                xml_decl: false,
                header: true,
                array_type: ArrayType::Exact,
                indent: false,
                crlf: false,
                quote: '"',
                xsi_types: true,
            },
            software_versions: &["V3R017C10S125", "V3R017C10S131", "V3R016C10S120"],
            hardware_version: "10C7.A",
            weight: 35,
            periodic_s: 3600,
            carries_interval: true,
            wakeup_s: 0,
            serial_prefix: "4857544",
        },
        Model {
            manufacturer: "THOMSON",
            oui: "00147F",
            product_class: "SpeedTouch 780",
            root: Root::Tr098,
            style: WireStyle {
                env: "soapenv",
                enc: "soap",
                cwmp: "cwmp",
                xml_decl: false,
                header: true,
                array_type: ArrayType::ZeroPadded,
                indent: true,
                crlf: true,
                quote: '"',
                xsi_types: true,
            },
            software_versions: &["7.4.4.7", "7.4.3.2"],
            hardware_version: "BANT-R",
            weight: 25,
            periodic_s: 3600,
            carries_interval: false,
            wakeup_s: 0,
            serial_prefix: "CP0644",
        },
        Model {
            manufacturer: "ZyXEL",
            oui: "EC43F6",
            product_class: "VMG8924-B10A",
            root: Root::Tr098,
            style: WireStyle {
                env: "SOAP-ENV",
                enc: "SOAP-ENC",
                cwmp: "cwmp",
                xml_decl: true,
                header: true,
                array_type: ArrayType::Exact,
                indent: true,
                crlf: false,
                quote: '"',
                xsi_types: true,
            },
            software_versions: &["V1.00(AAKL.14)C0", "V1.00(AAKL.12)C0"],
            hardware_version: "VMG8924-B10A",
            weight: 20,
            periodic_s: 7200,
            carries_interval: false,
            wakeup_s: 0,
            serial_prefix: "S1505",
        },
        Model {
            manufacturer: "MikroTik",
            oui: "E48D8C",
            product_class: "hAP lite",
            root: Root::Tr181,
            style: WireStyle {
                env: "soapenv",
                enc: "soap",
                cwmp: "cwmp",
                xml_decl: false,
                header: false,
                array_type: ArrayType::Exact,
                indent: true,
                crlf: false,
                quote: '\'',
                xsi_types: true,
            },
            software_versions: &["6.49.10", "7.12.1"],
            hardware_version: "RB941-2nD",
            weight: 12,
            periodic_s: 3600,
            carries_interval: true,
            wakeup_s: 0,
            serial_prefix: "HC10",
        },
        Model {
            manufacturer: "Cavium, Inc.",
            oui: "000FB7",
            product_class: "Cavium eNB",
            root: Root::Tr181,
            style: WireStyle {
                env: "SOAP-ENV",
                enc: "SOAP-ENC",
                cwmp: "cwmp",
                xml_decl: true,
                header: true,
                array_type: ArrayType::Missing,
                indent: true,
                crlf: false,
                quote: '"',
                xsi_types: false,
            },
            software_versions: &["OC-LTE 4.2.1"],
            hardware_version: "CNF7100",
            weight: 8,
            periodic_s: 3600,
            carries_interval: false,
            wakeup_s: 3600,
            serial_prefix: "120200",
        },
    ]
}
