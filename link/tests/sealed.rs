//! Sealed screen update streams over a real QUIC connection on loopback: an update larger than
//! one record arrives whole, and a stream cut after its first record, or carrying a number
//! already used, is refused with words that say so.

use std::sync::Mutex;

use link::sealed::{self, PeerPlaneError, UPDATE_RECORD};
use protocol::e2e::UpdateReceiver;
use protocol::peer::ScreenUpdate;

mod common;
use common::{connection, keys};

fn update(seq: u64, size: usize) -> ScreenUpdate {
    ScreenUpdate {
        seq,
        width: 640,
        height: 480,
        ops: Vec::new(),
        tile_data: (0..size).map(|i| (i * 7 % 253) as u8).collect(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_of_several_records_arrives_whole_and_only_once() {
    let (_server, agent, technician) = connection().await;
    let (agent_keys, tech_keys) = keys();
    let receiver = Mutex::new(tech_keys.update_receiver());
    for (seq, size) in [(1, 3 * UPDATE_RECORD + 17), (2, 10), (3, UPDATE_RECORD)] {
        let sent = update(seq, size);
        sealed::send_update(&agent, sealed::prepare_update(&agent_keys, sent.clone()))
            .await
            .unwrap();
        let stream = technician.accept_uni().await.unwrap();
        assert_eq!(sealed::read_update(stream, &receiver).await.unwrap(), sent);
    }
    // The same number again (as a replayed stream would carry it) is refused.
    sealed::send_update(&agent, sealed::prepare_update(&agent_keys, update(2, 10)))
        .await
        .unwrap();
    let stream = technician.accept_uni().await.unwrap();
    let err = sealed::read_update(stream, &receiver).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("a message was replayed: the relay or network sent it again"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_update_stream_cut_after_a_record_is_refused() {
    let (_server, agent, technician) = connection().await;
    let (agent_keys, tech_keys) = keys();
    // Only the first of its three records, then the end of the stream.
    let mut sealer = agent_keys.update_sealer(1);
    let message = protocol::wire::encode_frame(&protocol::peer::PeerMessage::ScreenUpdate(update(
        1,
        2 * UPDATE_RECORD + 5,
    )));
    let mut frame = Vec::new();
    sealer
        .seal_frame(&message[4..4 + UPDATE_RECORD], false, &mut frame)
        .unwrap();
    let mut s = agent.open_uni().await.unwrap();
    s.write_all(&frame).await.unwrap();
    s.finish().unwrap();
    let stream = technician.accept_uni().await.unwrap();
    let receiver: Mutex<UpdateReceiver> = Mutex::new(tech_keys.update_receiver());
    match sealed::read_update(stream, &receiver).await {
        Err(e @ PeerPlaneError::Tampered(_)) => assert!(
            e.to_string()
                .starts_with("a stream was cut short or extended: the relay or network altered it"),
            "{e}"
        ),
        other => panic!("expected a cut stream, got {other:?}"),
    }
}
