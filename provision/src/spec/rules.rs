//! Every refusal (and warning) `provision check` can give, as one list: the field it points at and the
//! condition in words. provision/README.md's refusal table is generated from this list by a test
//! (spec/tests/table.rs), which also makes sure every rule is reached by an example file.

/// One rule of the cluster file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    // The file as YAML.
    /// Not parseable as YAML.
    YamlSyntax,
    /// Empty, or only comments.
    EmptyFile,
    /// More than one YAML document.
    SecondDocument,
    /// An alias (`*name`).
    YamlAlias,
    /// A tag (`!!str`).
    YamlTag,
    /// Nested too deep for any field of the file.
    TooDeep,
    /// A key given twice in one mapping.
    DuplicateKey,
    // The shape of the file.
    /// A field the cluster file does not have.
    UnknownField,
    /// A required field is missing.
    MissingField,
    /// A value of the wrong kind (text, list, mapping, true/false).
    WrongType,
    /// A port outside 1–65535.
    BadPort,
    /// A count that is not a whole number.
    BadNumber,
    /// A word outside the allowed set.
    UnknownValue,
    // cluster:
    /// The cluster name is not a simple name.
    BadClusterName,
    /// `cluster.dns.domain` is not a DNS name.
    BadDomain,
    /// `cluster.dns.srv_name` is not a simple name.
    BadSrvName,
    /// `bootstrap: dns` without a domain.
    DnsWithoutDomain,
    /// A name server entry that is not a DNS name or IP.
    BadNameServer,
    /// A name server inside the zone without an address.
    NameServerWithoutAddress,
    /// A zone with no name server that has an address.
    ZoneWithoutNameServer,
    /// `bootstrap: discovery` without a `cluster.discovery` section.
    DiscoveryWithoutSection,
    /// `cluster.discovery` given while bootstrap is not `discovery`.
    DiscoveryNotBootstrap,
    /// `cluster.dns` given with `bootstrap: discovery`.
    DiscoveryWithDns,
    /// An empty endpoint list.
    DiscoveryNoEndpoints,
    /// An endpoint that is not `http(s)://host:port`.
    BadDiscoveryEndpoint,
    /// http and https endpoints mixed.
    DiscoveryMixedSchemes,
    /// An empty token, or one with `/` or blanks.
    BadDiscoveryToken,
    /// https endpoints without `ca`, or `ca`/`cert` with http endpoints.
    DiscoveryTlsMismatch,
    /// `cert` without `key` or the other way round.
    DiscoveryCertWithoutKey,
    /// A `ca`/`cert`/`key` file that cannot be read or is not PEM of its kind.
    DiscoveryFileUnreadable,
    /// A port below 1024.
    PrivilegedPort,
    /// An empty data_dir or config_dir.
    EmptyPath,
    /// A relative data_dir or config_dir on an ssh member.
    RelativePathOverSsh,
    /// A `{placeholder}` other than `{name}`.
    UnknownPlaceholder,
    /// logging.file is not an absolute path.
    LogFileNotAbsolute,
    // tls:
    /// A validity of 0 days.
    ZeroValidity,
    /// renew_before_days not below validity_days.
    RenewNotBelowValidity,
    /// The CA would expire before the certificates it signs.
    CaShorterThanLeaves,
    /// import_ca with `ca: separate`.
    ImportCaWithSeparate,
    /// An import_ca file cannot be read.
    ImportCaUnreadable,
    /// An import_ca file is not PEM of the right kind.
    ImportCaNotPem,
    /// The imported CA has expired or expires within renew_before_days.
    ImportCaExpired,
    /// The imported CA is not valid yet.
    ImportCaNotYetValid,
    /// The imported certificate is not a CA.
    ImportCaNotCa,
    /// The imported key is not the CA certificate's key.
    ImportCaKeyMismatch,
    /// A client identity that is not a simple name.
    BadClientName,
    /// A client identity listed twice.
    DuplicateClient,
    /// TLS without an `admin` client identity.
    NoAdminClient,
    // firewall:, monitoring:, apply:
    /// A client source that is not a network.
    BadClientSource,
    /// A Kubernetes namespace that is not a DNS label.
    BadNamespace,
    /// A health timeout of 0.
    ZeroHealthTimeout,
    /// An election timeout below 5 heartbeats or above 50 s, or a heartbeat of 0.
    BadRaftTiming,
    // auth:
    /// `auth:` without TLS (no client certificates to name users).
    AuthWithoutTls,
    /// A role name that is not a simple name.
    BadRoleName,
    /// A role named twice.
    DuplicateRole,
    /// A role named `root`.
    RootRoleRedefined,
    /// A role naming a client identity `tls.clients` does not list.
    UnknownAuthClient,
    /// A role naming `admin` or `root`, which hold the root role already.
    ReservedAuthClient,
    /// A permission with none, or more than one, of `key`, `prefix`, `from`.
    PermissionTarget,
    /// A permission on no key at all.
    EmptyPermissionRange,
    /// Two permissions of one role on overlapping keys.
    OverlappingPermissions,
    // nodes:
    /// No members.
    NoMembers,
    /// A member name that is not a simple name.
    BadMemberName,
    /// Two members with one name.
    DuplicateMemberName,
    /// A hostname where an IP is needed.
    AddressIsHostname,
    /// Not an IP address.
    BadAddress,
    /// An IP no member can bind and advertise.
    UnusableAddress,
    /// A loopback address on an ssh member.
    LoopbackOverSsh,
    /// One address for two members (or twice for one).
    DuplicateAddress,
    /// Two members on one address and port.
    SocketClash,
    /// client_port = peer_port.
    SamePortTwice,
    /// A hostname that is not a DNS name.
    BadHostname,
    /// Two members with one hostname.
    DuplicateHostname,
    /// DNS bootstrap without a member hostname.
    HostnameMissingForDns,
    /// A member hostname outside the discovery domain.
    HostnameOutsideDomain,
    /// Two members with no address family in common.
    NoCommonFamily,
    /// `ssh:` on a local member.
    SshOnLocalMember,
    // Warnings.
    /// An even number of members.
    EvenMembers,
    /// A member whose peer URL is not on its first address.
    PeerFamilyNotFirst,
}

impl Rule {
    /// Every rule, in the order of the README table.
    pub const ALL: &'static [Rule] = &[
        Rule::YamlSyntax,
        Rule::EmptyFile,
        Rule::SecondDocument,
        Rule::YamlAlias,
        Rule::YamlTag,
        Rule::TooDeep,
        Rule::DuplicateKey,
        Rule::UnknownField,
        Rule::MissingField,
        Rule::WrongType,
        Rule::BadPort,
        Rule::BadNumber,
        Rule::UnknownValue,
        Rule::BadClusterName,
        Rule::BadDomain,
        Rule::BadSrvName,
        Rule::DnsWithoutDomain,
        Rule::BadNameServer,
        Rule::NameServerWithoutAddress,
        Rule::ZoneWithoutNameServer,
        Rule::DiscoveryWithoutSection,
        Rule::DiscoveryNotBootstrap,
        Rule::DiscoveryWithDns,
        Rule::DiscoveryNoEndpoints,
        Rule::BadDiscoveryEndpoint,
        Rule::DiscoveryMixedSchemes,
        Rule::BadDiscoveryToken,
        Rule::DiscoveryTlsMismatch,
        Rule::DiscoveryCertWithoutKey,
        Rule::DiscoveryFileUnreadable,
        Rule::PrivilegedPort,
        Rule::EmptyPath,
        Rule::RelativePathOverSsh,
        Rule::UnknownPlaceholder,
        Rule::LogFileNotAbsolute,
        Rule::ZeroValidity,
        Rule::RenewNotBelowValidity,
        Rule::CaShorterThanLeaves,
        Rule::ImportCaWithSeparate,
        Rule::ImportCaUnreadable,
        Rule::ImportCaNotPem,
        Rule::ImportCaExpired,
        Rule::ImportCaNotYetValid,
        Rule::ImportCaNotCa,
        Rule::ImportCaKeyMismatch,
        Rule::BadClientName,
        Rule::DuplicateClient,
        Rule::NoAdminClient,
        Rule::BadClientSource,
        Rule::BadNamespace,
        Rule::ZeroHealthTimeout,
        Rule::BadRaftTiming,
        Rule::AuthWithoutTls,
        Rule::BadRoleName,
        Rule::DuplicateRole,
        Rule::RootRoleRedefined,
        Rule::UnknownAuthClient,
        Rule::ReservedAuthClient,
        Rule::PermissionTarget,
        Rule::EmptyPermissionRange,
        Rule::OverlappingPermissions,
        Rule::NoMembers,
        Rule::BadMemberName,
        Rule::DuplicateMemberName,
        Rule::AddressIsHostname,
        Rule::BadAddress,
        Rule::UnusableAddress,
        Rule::LoopbackOverSsh,
        Rule::DuplicateAddress,
        Rule::SocketClash,
        Rule::SamePortTwice,
        Rule::BadHostname,
        Rule::DuplicateHostname,
        Rule::HostnameMissingForDns,
        Rule::HostnameOutsideDomain,
        Rule::NoCommonFamily,
        Rule::SshOnLocalMember,
        Rule::EvenMembers,
        Rule::PeerFamilyNotFirst,
    ];

    /// A warning is printed and the file is still accepted.
    pub fn is_warning(self) -> bool {
        matches!(self, Rule::EvenMembers | Rule::PeerFamilyNotFirst)
    }

    /// The fields the rule is about, as the README table names them.
    pub fn fields(self) -> &'static str {
        use Rule::*;
        match self {
            YamlSyntax | EmptyFile | SecondDocument => "the file",
            YamlAlias | YamlTag | TooDeep | DuplicateKey | UnknownField | MissingField
            | WrongType => "any",
            BadPort => "`client_port`, `peer_port`, `nodes[].ssh.port`",
            BadNumber => "`tls.*_days`, `apply.*_seconds`",
            UnknownValue => {
                "`bootstrap`, `transport`, `tls.key_algorithm`, `tls.ca`, `firewall.backend`, \
                 `auth.roles[].permissions[].access`"
            }
            BadClusterName => "`cluster.name`",
            BadDomain => "`cluster.dns.domain`",
            BadSrvName => "`cluster.dns.srv_name`",
            DnsWithoutDomain => "`cluster.dns.domain`",
            BadNameServer | NameServerWithoutAddress => "`cluster.dns.name_servers[]`",
            ZoneWithoutNameServer => "`cluster.dns`",
            DiscoveryWithoutSection | DiscoveryNotBootstrap | DiscoveryWithDns => {
                "`cluster.bootstrap`, `cluster.discovery`"
            }
            DiscoveryNoEndpoints | BadDiscoveryEndpoint | DiscoveryMixedSchemes => {
                "`cluster.discovery.endpoints`"
            }
            BadDiscoveryToken => "`cluster.discovery.token`",
            DiscoveryTlsMismatch | DiscoveryCertWithoutKey | DiscoveryFileUnreadable => {
                "`cluster.discovery.ca`, `.cert`, `.key`"
            }
            PrivilegedPort => "`client_port`, `peer_port`",
            EmptyPath | RelativePathOverSsh | UnknownPlaceholder => "`data_dir`, `config_dir`",
            LogFileNotAbsolute => "`logging.file`",
            ZeroValidity => "`tls.validity_days`, `tls.ca_validity_days`",
            RenewNotBelowValidity => "`tls.renew_before_days`",
            CaShorterThanLeaves => "`tls.ca_validity_days`",
            ImportCaWithSeparate => "`tls.import_ca`",
            ImportCaUnreadable | ImportCaNotPem => "`tls.import_ca.cert`, `tls.import_ca.key`",
            ImportCaExpired | ImportCaNotYetValid | ImportCaNotCa => "`tls.import_ca.cert`",
            ImportCaKeyMismatch => "`tls.import_ca.key`",
            BadClientName | DuplicateClient | NoAdminClient => "`tls.clients`",
            BadClientSource => "`firewall.client_sources[]`",
            BadNamespace => "`monitoring.namespace`",
            ZeroHealthTimeout => "`apply.health_timeout_seconds`",
            BadRaftTiming => "`cluster.heartbeat_interval_ms`, `cluster.election_timeout_ms`",
            AuthWithoutTls => "`auth`",
            BadRoleName | DuplicateRole | RootRoleRedefined => "`auth.roles[].name`",
            UnknownAuthClient | ReservedAuthClient => "`auth.roles[].clients[]`",
            PermissionTarget | EmptyPermissionRange | OverlappingPermissions => {
                "`auth.roles[].permissions[]`"
            }
            NoMembers | EvenMembers | NoCommonFamily => "`nodes`",
            BadMemberName | DuplicateMemberName => "`nodes[].name`",
            AddressIsHostname | BadAddress | UnusableAddress | LoopbackOverSsh
            | DuplicateAddress | PeerFamilyNotFirst => "`nodes[].address`",
            SocketClash | SamePortTwice => "`nodes[].client_port`, `nodes[].peer_port`",
            BadHostname | DuplicateHostname | HostnameMissingForDns | HostnameOutsideDomain => {
                "`nodes[].hostname`"
            }
            SshOnLocalMember => "`nodes[].ssh`",
        }
    }

    /// The condition, in words.
    pub fn condition(self) -> &'static str {
        use Rule::*;
        match self {
            YamlSyntax => "not valid YAML",
            EmptyFile => "empty, or only comments",
            SecondDocument => "a second YAML document (`---`)",
            YamlAlias => "an alias (`*name`)",
            YamlTag => "a tag (`!!str`, `!x`)",
            TooDeep => "nested deeper than any field of the file",
            DuplicateKey => "a key given twice in one mapping",
            UnknownField => "a field the file does not have (with the closest one)",
            MissingField => "a required field missing",
            WrongType => "a value of the wrong kind (text, list, mapping, true/false)",
            BadPort => "not a whole number from 1 to 65535",
            BadNumber => "not a whole number (0 to 4294967295)",
            UnknownValue => "not one of the allowed words (with the closest one)",
            BadClusterName => "not letters, digits, `-`, `_` (1–63)",
            BadDomain => "not a DNS name",
            BadSrvName => "not letters, digits, `-`, `_`",
            DnsWithoutDomain => "`bootstrap: dns` without a domain",
            BadNameServer => "not a DNS name, or its address not an IP",
            NameServerWithoutAddress => "inside the zone, neither a member's hostname nor given an address",
            ZoneWithoutNameServer => "no `name_servers` and no member hostname inside the domain",
            DiscoveryWithoutSection => "`bootstrap: discovery` without a `discovery:` section",
            DiscoveryNotBootstrap => "`discovery:` given while `bootstrap` is not `discovery`",
            DiscoveryWithDns => "`dns:` given with `bootstrap: discovery`",
            DiscoveryNoEndpoints => "an empty list",
            BadDiscoveryEndpoint => "not an `http://` or `https://` URL with a host and port and no path",
            DiscoveryMixedSchemes => "`http://` and `https://` endpoints mixed",
            BadDiscoveryToken => "empty, or containing `/` or blanks",
            DiscoveryTlsMismatch => "`https://` endpoints without `ca`, or `ca`/`cert` with `http://` endpoints",
            DiscoveryCertWithoutKey => "`cert` without `key`, or `key` without `cert`",
            DiscoveryFileUnreadable => "cannot be read, or not PEM of its kind",
            PrivilegedPort => "below 1024 (the unit runs without capabilities)",
            EmptyPath => "empty",
            RelativePathOverSsh => "relative on an `ssh` member",
            UnknownPlaceholder => "a `{placeholder}` other than `{name}`",
            LogFileNotAbsolute => "not an absolute path, or a `{placeholder}` in it",
            ZeroValidity => "0",
            RenewNotBelowValidity => "not below `validity_days`",
            CaShorterThanLeaves => "below `validity_days` (the CA would expire before its leaves)",
            ImportCaWithSeparate => "given with `ca: separate`",
            ImportCaUnreadable => "cannot be read",
            ImportCaNotPem => "not a PEM certificate / private key",
            ImportCaExpired => "expired, or expires within `renew_before_days`",
            ImportCaNotYetValid => "not valid yet",
            ImportCaNotCa => "not a CA (no basicConstraints CA:TRUE)",
            ImportCaKeyMismatch => "not the key of `import_ca.cert`",
            BadClientName => "not letters, digits, `-`, `_`",
            DuplicateClient => "an identity listed twice",
            NoAdminClient => "no `admin` (apply, status and backup log in with it)",
            BadClientSource => "not a CIDR network or an IP",
            BadNamespace => "not a Kubernetes name (lowercase letters, digits, `-`)",
            ZeroHealthTimeout => "0",
            BadRaftTiming => "election timeout below 5 heartbeats or above 50000, or heartbeat 0",
            AuthWithoutTls => "given without TLS (users are named by client certificates)",
            BadRoleName => "not letters, digits, `-`, `_` (1–63)",
            DuplicateRole => "a role named twice",
            RootRoleRedefined => "`root` (etcd's built-in role: every right)",
            UnknownAuthClient => "not an identity of `tls.clients`",
            ReservedAuthClient => "`admin` or `root` (they hold the root role already)",
            PermissionTarget => "none, or more than one, of `key`, `prefix`, `from` (`to` only with `from`)",
            EmptyPermissionRange => "on no key: an empty `key` or `from`, or `to` not after `from`",
            OverlappingPermissions => "two of one role on overlapping keys",
            NoMembers => "no members",
            BadMemberName => "not letters, digits, `-`, `_` (1–63)",
            DuplicateMemberName => "used by two members",
            AddressIsHostname => "a host name instead of an IP",
            BadAddress => "not an IPv4 or IPv6 address",
            UnusableAddress => "unspecified, multicast, broadcast, IPv4-mapped or IPv6 link-local",
            LoopbackOverSsh => "loopback on an `ssh` member",
            DuplicateAddress => "used by two members, or twice by one (loopback excepted)",
            SocketClash => "the same address and port as another member's port",
            SamePortTwice => "the same port for client and peer traffic",
            BadHostname => "not a DNS name",
            DuplicateHostname => "used by two members",
            HostnameMissingForDns => "missing with `bootstrap: dns`",
            HostnameOutsideDomain => "outside the discovery domain",
            NoCommonFamily => "two members without an address family in common",
            SshOnLocalMember => "given for a `transport: local` member",
            EvenMembers => "(warning) an even number of members",
            PeerFamilyNotFirst => {
                "(warning) a member's peer URL is not on its first address (the family every member has)"
            }
        }
    }
}
