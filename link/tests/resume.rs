//! The resume exchange over a real QUIC connection on loopback: the two ends of one session
//! prove themselves to each other and talk under the resumed leg's keys; with an end holding
//! another session's secret, neither end resumes.

use link::resume::{agent_exchange, technician_exchange};
use link::sealed::PeerPlaneError;
use protocol::e2e::ResumeError;
use protocol::peer::{ConsentState, PeerMessage};

mod common;
use common::{connection, keys};

#[tokio::test(flavor = "multi_thread")]
async fn the_same_two_ends_resume_and_talk_under_fresh_keys() {
    let (_server, agent, technician) = connection().await;
    let (agent_keys, tech_keys) = keys();
    let (a, t) = (agent_keys.resume_secret(), tech_keys.resume_secret());
    let (resumed_agent, resumed_tech) = tokio::join!(
        agent_exchange(&agent, &a),
        technician_exchange(&technician, &t)
    );
    let (mut resumed_agent, mut resumed_tech) = (resumed_agent.unwrap(), resumed_tech.unwrap());
    assert_eq!(resumed_agent.keys.session_id(), agent_keys.session_id());
    let said = PeerMessage::Consent(ConsentState::Control);
    resumed_agent.send.send(&said).await.unwrap();
    assert_eq!(resumed_tech.recv.recv().await.unwrap(), Some(said));
}

#[tokio::test(flavor = "multi_thread")]
async fn with_an_end_of_another_session_neither_end_resumes() {
    let (agent_keys, tech_keys) = keys();
    let (other_agent, other_tech) = keys();
    let refused = |r: Result<_, PeerPlaneError>| {
        matches!(r, Err(PeerPlaneError::Resume(ResumeError::BadProof)))
    };
    // A technician end that is not this session's: the agent refuses its proof.
    let (_server, agent, technician) = connection().await;
    let (mine, impostor) = (agent_keys.resume_secret(), other_tech.resume_secret());
    let (by_agent, by_tech) = tokio::join!(
        agent_exchange(&agent, &mine),
        technician_exchange(&technician, &impostor),
    );
    assert!(refused(by_agent.map(|_| ())));
    assert!(by_tech.is_err());
    // An agent end that is not: it cannot check the technician's proof, so it sends none, and
    // the technician does not resume either.
    let (_server, agent, technician) = connection().await;
    let (impostor, mine) = (other_agent.resume_secret(), tech_keys.resume_secret());
    let (by_agent, by_tech) = tokio::join!(
        agent_exchange(&agent, &impostor),
        technician_exchange(&technician, &mine),
    );
    assert!(refused(by_agent.map(|_| ())));
    assert!(by_tech.is_err());
}
