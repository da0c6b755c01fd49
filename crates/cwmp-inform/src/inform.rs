//! What an Inform holds once extracted.

use std::borrow::Cow;
use std::fmt;

/// One extracted Inform. Text borrows from the input unless it had to be unescaped,
/// transcoded, repaired or joined from several pieces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inform<'a> {
    /// The namespace URI bound to the Inform element's prefix, e.g.
    /// `urn:dslforum-org:cwmp-1-0`; `None` when the prefix is not bound.
    pub namespace: Option<Cow<'a, str>>,
    /// The SOAP header fields CWMP defines.
    pub header: Header<'a>,
    /// `DeviceId`; `oui` and `serial_number` are never empty.
    pub device_id: DeviceId<'a>,
    /// Event codes in document order. An `EventStruct` with two `EventCode`s gives
    /// two entries sharing its `CommandKey`.
    pub events: Vec<Event<'a>>,
    /// `MaxEnvelopes`, when present and a number.
    pub max_envelopes: Option<u32>,
    /// `RetryCount`, when present and a number.
    pub retry_count: Option<u32>,
    /// `CurrentTime` as written (trimmed); never trusted for event time.
    pub current_time: Option<Cow<'a, str>>,
    /// `ParameterList` in document order; duplicate names are kept.
    pub params: Vec<Param<'a>>,
    /// Quirks that were accepted.
    pub warnings: Warnings,
}

/// SOAP header fields. All are optional; many CPEs send no header at all.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header<'a> {
    /// `cwmp:ID`, the session id; `None` when absent, `Some("")` when empty.
    pub id: Option<Cow<'a, str>>,
    /// `HoldRequests` (or the misspelt `HoldRequest`), when present.
    pub hold_requests: Option<bool>,
    /// `NoMoreRequests` (CWMP 1.0), when present.
    pub no_more_requests: Option<bool>,
    /// `SessionTimeout` in seconds (CWMP 1.2 Amendment 5 and later), when present.
    /// `Some(None)` records a header that was present but not a number.
    pub session_timeout: Option<Option<u32>>,
    /// `SupportedCWMPVersions` as written, e.g. `1.0,1.1,1.2,1.3,1.4`.
    pub supported_cwmp_versions: Option<Cow<'a, str>>,
}

/// `DeviceId`. All four fields are trimmed of XML white space.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceId<'a> {
    /// `Manufacturer`, possibly empty.
    pub manufacturer: Cow<'a, str>,
    /// `OUI`, never empty.
    pub oui: Cow<'a, str>,
    /// `ProductClass`, possibly empty.
    pub product_class: Cow<'a, str>,
    /// `SerialNumber`, never empty.
    pub serial_number: Cow<'a, str>,
}

/// One event code with the command key of its `EventStruct`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event<'a> {
    /// `EventCode`, trimmed, e.g. `1 BOOT`, `M Reboot`, `X 00D09E Foo`.
    pub code: Cow<'a, str>,
    /// `CommandKey`, trimmed; empty when absent.
    pub command_key: Cow<'a, str>,
}

/// One `ParameterValueStruct`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Param<'a> {
    /// `Name`, trimmed.
    pub name: Cow<'a, str>,
    /// `Value` exactly as sent (entity-decoded, line ends normalized, never trimmed).
    pub value: Cow<'a, str>,
    /// The value's `xsi:type` (any prefix) as written, or `None`.
    pub type_: Option<Cow<'a, str>>,
}

impl Inform<'_> {
    /// Copies every borrowed string so that the Inform outlives its input.
    pub fn into_owned(self) -> Inform<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        Inform {
            namespace: self.namespace.map(own),
            header: self.header.into_owned(),
            device_id: DeviceId {
                manufacturer: own(self.device_id.manufacturer),
                oui: own(self.device_id.oui),
                product_class: own(self.device_id.product_class),
                serial_number: own(self.device_id.serial_number),
            },
            events: self
                .events
                .into_iter()
                .map(|e| Event {
                    code: own(e.code),
                    command_key: own(e.command_key),
                })
                .collect(),
            max_envelopes: self.max_envelopes,
            retry_count: self.retry_count,
            current_time: self.current_time.map(own),
            params: self
                .params
                .into_iter()
                .map(|p| Param {
                    name: own(p.name),
                    value: own(p.value),
                    type_: p.type_.map(own),
                })
                .collect(),
            warnings: self.warnings,
        }
    }
}

impl Header<'_> {
    /// Copies every borrowed string.
    pub fn into_owned(self) -> Header<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        Header {
            id: self.id.map(own),
            hold_requests: self.hold_requests,
            no_more_requests: self.no_more_requests,
            session_timeout: self.session_timeout,
            supported_cwmp_versions: self.supported_cwmp_versions.map(own),
        }
    }
}

macro_rules! warnings {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// A quirk the extractor accepted. The set is fixed, so names are safe metric labels.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Warning {
            $($(#[$doc])* $variant,)*
        }

        impl Warning {
            /// Every warning, in the order [`Warnings::iter`] yields them.
            pub const ALL: &'static [Warning] = &[$(Warning::$variant,)*];

            /// The stable snake_case name used in records and metrics.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Warning::$variant => $name,)*
                }
            }
        }
    };
}

warnings! {
    /// An `arrayType` count (`EventStruct[2]`) differs from the number of items present.
    ArrayTypeMismatch = "array_type_mismatch",
    /// `Event` or `ParameterList` has no `arrayType` attribute.
    MissingArrayType = "missing_array_type",
    /// An `arrayType` attribute whose count cannot be read (`EventStruct[]`, `foo`).
    InvalidArrayType = "invalid_array_type",
    /// Two parameters share a name; both are kept, in order.
    DuplicateParam = "duplicate_param",
    /// One `EventStruct` holds more than one `EventCode`.
    MultipleEventCodes = "multiple_event_codes",
    /// An `EventStruct` without an `EventCode` (or with an empty one); it is skipped.
    MissingEventCode = "missing_event_code",
    /// A `ParameterValueStruct` without a `Value`; the value is taken as empty.
    MissingValue = "missing_value",
    /// A `ParameterValueStruct` without a `Name` (or with an empty one); it is skipped.
    MissingParamName = "missing_param_name",
    /// Bytes that are not valid in the message's encoding were replaced by U+FFFD.
    InvalidUtf8 = "invalid_utf8",
    /// The RPC's children are not in schema order (for Inform: `DeviceId`, `Event`,
    /// `MaxEnvelopes`, `CurrentTime`, `RetryCount`, `ParameterList`; for
    /// TransferComplete: `CommandKey`, `FaultStruct`, `StartTime`, `CompleteTime`).
    UnknownChildrenOrder = "unknown_children_order",
    /// An element the schema does not define where it appears; it is skipped.
    UnknownElement = "unknown_element",
    /// The same child appears twice where one is expected (two `DeviceId`s, two `OUI`s);
    /// the last one wins.
    DuplicateElement = "duplicate_element",
    /// `MaxEnvelopes`, `RetryCount`, `SessionTimeout`, `FaultCode` or `FileSize` is not
    /// a non-negative integer, or `IsDownload` not a boolean.
    InvalidNumber = "invalid_number",
    /// The Inform has no `Event` array.
    MissingEventList = "missing_event_list",
    /// The Inform has no `ParameterList`.
    MissingParameterList = "missing_parameter_list",
    /// The body was not UTF-8 (ISO-8859-1 or windows-1252) and text was transcoded.
    Transcoded = "transcoded",
    /// A TransferComplete without `FaultStruct`, or a `FaultStruct` without
    /// `FaultCode`: the outcome is unknown (`fault` or its `code` is `None`).
    MissingFault = "missing_fault",
}

/// A set of [`Warning`]s.
#[derive(Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Warnings(u32);

impl Warnings {
    /// Adds a warning.
    pub fn insert(&mut self, w: Warning) {
        self.0 |= 1 << (w as u8);
    }

    /// Whether `w` is in the set.
    pub fn contains(self, w: Warning) -> bool {
        self.0 & (1 << (w as u8)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The warnings in a fixed order (declaration order of [`Warning`]).
    pub fn iter(self) -> impl Iterator<Item = Warning> {
        Warning::ALL
            .iter()
            .copied()
            .filter(move |w| self.contains(*w))
    }
}

impl fmt::Debug for Warnings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Warning::as_str))
            .finish()
    }
}

impl FromIterator<Warning> for Warnings {
    fn from_iter<T: IntoIterator<Item = Warning>>(iter: T) -> Self {
        let mut set = Warnings::default();
        for w in iter {
            set.insert(w);
        }
        set
    }
}
