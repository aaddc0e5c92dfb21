//! What the session-log tool tests share: the opening record of a test log.

use protocol::control::Role;
use protocol::sessionlog::{code_sha256, Participant, SessionOpened, TypedText};

/// The opening of a log between test peers on loopback, the agent's software as given.
pub fn opened(agent_software: &str) -> SessionOpened {
    SessionOpened {
        started_unix_ms: 1_714_572_192_000,
        relay_address: "127.0.0.1:4433".into(),
        relay_fingerprint: "00".repeat(32),
        relay_software: "relay test".into(),
        technician: Participant {
            role: Role::Technician,
            description: "technician at 127.0.0.1:5000".into(),
            software: "technician test".into(),
        },
        agent: Participant {
            role: Role::Agent,
            description: "agent at 127.0.0.1:6000".into(),
            software: agent_software.into(),
        },
        protocol_version: protocol::PROTOCOL_VERSION,
        code_sha256: code_sha256("123456789"),
        typed_text: TypedText::CountOnly,
    }
}
