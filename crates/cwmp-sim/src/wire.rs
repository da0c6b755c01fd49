//! Writes an Inform the way a model's firmware does.

use std::fmt::Write;

use crate::model::{ArrayType, Model, Root};

/// What one Inform says.
#[derive(Debug, Clone, PartialEq)]
pub struct InformSpec<'a> {
    pub model: &'a Model,
    pub serial: &'a str,
    pub software_version: &'a str,
    pub events: &'a [(&'a str, &'a str)],
    pub retry_count: u32,
    /// `CurrentTime` as the CPE would write it.
    pub current_time: &'a str,
    pub session_id: u64,
    pub external_ip: &'a str,
    pub parameter_key: &'a str,
    /// `…ManagementServer.PeriodicInformInterval`, when the model carries it.
    pub periodic_interval: Option<&'a str>,
}

fn escape(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// The forced-inform parameters of a model's data model.
fn params<'a>(spec: &'a InformSpec<'a>) -> Vec<(String, &'a str, &'static str)> {
    let r = spec.model.root.prefix();
    let mut p = vec![
        (
            format!("{r}DeviceInfo.HardwareVersion"),
            spec.model.hardware_version,
            "xsd:string",
        ),
        (
            format!("{r}DeviceInfo.SoftwareVersion"),
            spec.software_version,
            "xsd:string",
        ),
        (format!("{r}DeviceInfo.ProvisioningCode"), "", "xsd:string"),
        (
            format!("{r}ManagementServer.ParameterKey"),
            spec.parameter_key,
            "xsd:string",
        ),
        (
            format!("{r}ManagementServer.ConnectionRequestURL"),
            "",
            "xsd:string",
        ),
    ];
    if let Some(interval) = spec.periodic_interval {
        p.push((
            format!("{r}ManagementServer.PeriodicInformInterval"),
            interval,
            "xsd:unsignedInt",
        ));
    }
    match spec.model.root {
        Root::Tr098 => {
            p.insert(
                0,
                (
                    format!("{r}DeviceSummary"),
                    "InternetGatewayDevice:1.4[](Baseline:2, EthernetLAN:1, Time:1)",
                    "xsd:string",
                ),
            );
            p.push((
                format!("{r}WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.ExternalIPAddress"),
                spec.external_ip,
                "xsd:string",
            ));
        }
        Root::Tr181 => {
            p.insert(
                0,
                (format!("{r}RootDataModelVersion"), "2.11", "xsd:string"),
            );
            p.push((
                format!("{r}IP.Interface.1.IPv4Address.1.IPAddress"),
                spec.external_ip,
                "xsd:string",
            ));
        }
    }
    p
}

/// How one model writes markup: prefixes, quotes, indentation, line ends.
struct Pen {
    st: crate::model::WireStyle,
    nl: &'static str,
}

impl Pen {
    fn new(model: &Model) -> Self {
        let st = model.style;
        let nl = match (st.indent, st.crlf) {
            (false, _) => "",
            (true, true) => "\r\n",
            (true, false) => "\n",
        };
        Pen { st, nl }
    }

    fn ind(&self, depth: usize) -> String {
        if self.st.indent {
            " ".repeat(depth)
        } else {
            String::new()
        }
    }

    /// The XML declaration, the envelope, the header and the opening of the body.
    fn head(&self, x: &mut String, session_id: u64) {
        let (env, enc, cw, q, nl) = (
            self.st.env,
            self.st.enc,
            self.st.cwmp,
            self.st.quote,
            self.nl,
        );
        if self.st.xml_decl {
            let _ = write!(x, "<?xml version={q}1.0{q} encoding={q}UTF-8{q}?>{nl}");
        }
        let _ = write!(
            x,
            "<{env}:Envelope xmlns:{env}={q}http://schemas.xmlsoap.org/soap/envelope/{q} xmlns:{enc}={q}http://schemas.xmlsoap.org/soap/encoding/{q} xmlns:xsd={q}http://www.w3.org/2001/XMLSchema{q} xmlns:xsi={q}http://www.w3.org/2001/XMLSchema-instance{q} xmlns:{cw}={q}urn:dslforum-org:cwmp-1-0{q}>{nl}"
        );
        if self.st.header {
            let _ = write!(
                x,
                "{}<{env}:Header>{nl}{}<{cw}:ID {env}:mustUnderstand={q}1{q}>{}</{cw}:ID>{nl}{}</{env}:Header>{nl}",
                self.ind(1),
                self.ind(2),
                session_id,
                self.ind(1)
            );
        }
        let _ = write!(x, "{}<{env}:Body>{nl}", self.ind(1));
    }

    /// The end of the body and of the envelope.
    fn tail(&self, x: &mut String) {
        let (env, nl) = (self.st.env, self.nl);
        let _ = write!(x, "{}</{env}:Body>{nl}</{env}:Envelope>{nl}", self.ind(1));
    }

    /// `<Tag>text</Tag>` at `depth`, the text escaped.
    fn leaf(&self, x: &mut String, depth: usize, tag: &str, text: &str) {
        let _ = write!(x, "{}<{tag}>", self.ind(depth));
        escape(text, x);
        let _ = write!(x, "</{tag}>{}", self.nl);
    }
}

/// What one `TransferComplete` (or `AutonomousTransferComplete`) reports.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferSpec<'a> {
    pub model: &'a Model,
    pub session_id: u64,
    /// The `Download`'s command key (empty for an autonomous transfer).
    pub command_key: &'a str,
    /// 0 for success.
    pub fault_code: u32,
    pub fault_string: &'a str,
    pub start_time: &'a str,
    pub complete_time: &'a str,
    /// An autonomous transfer: the file the CPE fetched by itself.
    pub autonomous: Option<AutonomousSpec<'a>>,
}

/// The fields only `AutonomousTransferComplete` has.
#[derive(Debug, Clone, PartialEq)]
pub struct AutonomousSpec<'a> {
    pub transfer_url: &'a str,
    pub file_type: &'a str,
    pub file_size: u64,
    pub target_file_name: &'a str,
}

/// The transfer result as the device would POST it, after its Inform.
pub fn write_transfer_complete(spec: &TransferSpec<'_>) -> Vec<u8> {
    let pen = Pen::new(spec.model);
    let (cw, nl) = (pen.st.cwmp, pen.nl);
    let rpc = if spec.autonomous.is_some() {
        "AutonomousTransferComplete"
    } else {
        "TransferComplete"
    };
    let mut x = String::with_capacity(1024);
    pen.head(&mut x, spec.session_id);
    let _ = write!(x, "{}<{cw}:{rpc}>{nl}", pen.ind(2));
    match &spec.autonomous {
        None => pen.leaf(&mut x, 3, "CommandKey", spec.command_key),
        Some(a) => {
            pen.leaf(&mut x, 3, "AnnounceURL", "");
            pen.leaf(&mut x, 3, "TransferURL", a.transfer_url);
            pen.leaf(&mut x, 3, "IsDownload", "1");
            pen.leaf(&mut x, 3, "FileType", a.file_type);
            pen.leaf(&mut x, 3, "FileSize", &a.file_size.to_string());
            pen.leaf(&mut x, 3, "TargetFileName", a.target_file_name);
        }
    }
    let _ = write!(x, "{}<FaultStruct>{nl}", pen.ind(3));
    pen.leaf(&mut x, 4, "FaultCode", &spec.fault_code.to_string());
    pen.leaf(&mut x, 4, "FaultString", spec.fault_string);
    let _ = write!(x, "{}</FaultStruct>{nl}", pen.ind(3));
    pen.leaf(&mut x, 3, "StartTime", spec.start_time);
    pen.leaf(&mut x, 3, "CompleteTime", spec.complete_time);
    let _ = write!(x, "{}</{cw}:{rpc}>{nl}", pen.ind(2));
    pen.tail(&mut x);
    x.into_bytes()
}

/// The Inform as the device would POST it.
pub fn write_inform(spec: &InformSpec<'_>) -> Vec<u8> {
    let pen = Pen::new(spec.model);
    let st = pen.st;
    let (enc, cw, q, nl) = (st.enc, st.cwmp, st.quote, pen.nl);
    let ind = |depth: usize| pen.ind(depth);
    let array = |kind: &str, n: usize| match st.array_type {
        ArrayType::Exact => format!(" {enc}:arrayType={q}{cw}:{kind}[{n}]{q}"),
        ArrayType::ZeroPadded => format!(" {enc}:arrayType={q}{cw}:{kind}[{n:02}]{q}"),
        ArrayType::Missing => String::new(),
    };
    let mut x = String::with_capacity(2048);
    pen.head(&mut x, spec.session_id);
    let _ = write!(x, "{}<{cw}:Inform>{nl}", ind(2));
    let _ = write!(x, "{}<DeviceId>{nl}", ind(3));
    for (tag, value) in [
        ("Manufacturer", spec.model.manufacturer),
        ("OUI", spec.model.oui),
        ("ProductClass", spec.model.product_class),
        ("SerialNumber", spec.serial),
    ] {
        pen.leaf(&mut x, 4, tag, value);
    }
    let _ = write!(x, "{}</DeviceId>{nl}", ind(3));
    let _ = write!(
        x,
        "{}<Event{}>{nl}",
        ind(3),
        array("EventStruct", spec.events.len())
    );
    for (code, key) in spec.events {
        let _ = write!(
            x,
            "{}<EventStruct>{nl}{}<EventCode>{code}</EventCode>{nl}{}<CommandKey>",
            ind(4),
            ind(5),
            ind(5)
        );
        escape(key, &mut x);
        let _ = write!(x, "</CommandKey>{nl}{}</EventStruct>{nl}", ind(4));
    }
    let _ = write!(x, "{}</Event>{nl}", ind(3));
    let _ = write!(x, "{}<MaxEnvelopes>1</MaxEnvelopes>{nl}", ind(3));
    let _ = write!(
        x,
        "{}<CurrentTime>{}</CurrentTime>{nl}",
        ind(3),
        spec.current_time
    );
    let _ = write!(
        x,
        "{}<RetryCount>{}</RetryCount>{nl}",
        ind(3),
        spec.retry_count
    );
    let params = params(spec);
    let _ = write!(
        x,
        "{}<ParameterList{}>{nl}",
        ind(3),
        array("ParameterValueStruct", params.len())
    );
    for (name, value, ty) in &params {
        let _ = write!(
            x,
            "{}<ParameterValueStruct>{nl}{}<Name>{name}</Name>{nl}{}",
            ind(4),
            ind(5),
            ind(5)
        );
        if st.xsi_types {
            let _ = write!(x, "<Value xsi:type={q}{ty}{q}>");
        } else {
            x.push_str("<Value>");
        }
        escape(value, &mut x);
        let _ = write!(x, "</Value>{nl}{}</ParameterValueStruct>{nl}", ind(4));
    }
    let _ = write!(x, "{}</ParameterList>{nl}", ind(3));
    let _ = write!(x, "{}</{cw}:Inform>{nl}", ind(2));
    pen.tail(&mut x);
    x.into_bytes()
}
