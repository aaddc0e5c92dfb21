//! File transfers between two ends over a real QUIC connection on loopback, the session stream
//! stood in for by passing each end's messages to the other: files and folders arrive bit-exact
//! under sanitised names without overwriting anything, a transfer resumes from a partial file,
//! a partial file that is not a part of the file is caught by the SHA-256 check, and a declined
//! offer writes nothing.

use std::path::Path;
use std::time::Duration;

use link::files::{Command, Direction, FileNews, Files, Out};
use protocol::transfer::{partial_name, AcceptedBy, FileMessage, Offer, OfferedFile};
use quinn::Endpoint;
use sha2::{Digest, Sha256};

mod common;
use common::{connection, keys};

/// Two ends: the technician's (which sends; its streams go to the agent) and the agent's
/// (which takes every stream itself).
struct Pair {
    _server: Endpoint,
    tech: Files,
    agent: Files,
}

impl Pair {
    async fn new() -> Self {
        let (server, agent_conn, tech_conn) = connection().await;
        let (agent_keys, tech_keys) = keys();
        Self {
            _server: server,
            tech: Files::start(tech_conn, tech_keys.file_keys(), false),
            agent: Files::start(agent_conn, agent_keys.file_keys(), true),
        }
    }

    /// Passes messages between the ends until `until` says yes of some news (from the
    /// technician's end: `true`), answering offers on the agent's end with `answer`; returns
    /// every piece of news seen, with the end it came from.
    async fn run(
        &mut self,
        answer: impl Fn(&protocol::transfer::IncomingOffer) -> Command,
        until: impl Fn(bool, &FileNews) -> bool,
    ) -> Vec<(bool, FileNews)> {
        let mut seen = Vec::new();
        let limit = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(limit);
        loop {
            let (from_tech, out) = tokio::select! {
                out = self.tech.next() => (true, out),
                out = self.agent.next() => (false, out),
                _ = &mut limit => panic!("nothing more happened; seen: {seen:#?}"),
            };
            let (me, other) = if from_tech {
                (&self.tech, &self.agent)
            } else {
                (&self.agent, &self.tech)
            };
            match out {
                Out::Peer(m) => other.command(Command::Peer(m)).await,
                Out::Broken(why) => panic!("broken: {why}"),
                Out::News(news) => {
                    if let (false, FileNews::Offered { offer, .. }) = (from_tech, &news) {
                        me.command(answer(offer)).await;
                    }
                    let done = until(from_tech, &news);
                    seen.push((from_tech, news));
                    if done {
                        return seen;
                    }
                }
            }
        }
    }
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Bytes that differ at every offset, so a byte out of place shows.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2654435761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn accept_into(dir: &Path) -> impl Fn(&protocol::transfer::IncomingOffer) -> Command + '_ {
    move |offer| Command::Accept {
        offer: offer.id,
        dir: dir.to_path_buf(),
        by: AcceptedBy::Person,
    }
}

fn delivered(n: usize) -> impl Fn(bool, &FileNews) -> bool {
    let count = std::sync::atomic::AtomicUsize::new(0);
    move |from_tech, news| {
        from_tech
            && matches!(news, FileNews::Done { .. } | FileNews::Failed { .. })
            && count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == n
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_and_a_folder_arrive_bit_exact_and_nothing_is_overwritten() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let big = content(3 * link::files::BLOCK + 12_345, 1);
    std::fs::write(src.path().join("report.pdf"), &big).unwrap();
    let folder = src.path().join("Photos");
    std::fs::create_dir_all(folder.join("2024")).unwrap();
    std::fs::write(folder.join("a.jpg"), content(70_000, 2)).unwrap();
    std::fs::write(folder.join("2024").join("b.jpg"), b"").unwrap();
    // Already there: the file that arrives takes another name.
    std::fs::write(dst.path().join("report.pdf"), b"the user's own").unwrap();

    let mut pair = Pair::new().await;
    pair.tech
        .command(Command::Send {
            paths: vec![src.path().join("report.pdf"), folder.clone()],
            tag: 7,
        })
        .await;
    let seen = pair.run(accept_into(dst.path()), delivered(3)).await;

    let done: Vec<&FileNews> = seen
        .iter()
        .filter(|(tech, n)| *tech && matches!(n, FileNews::Done { .. }))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(done.len(), 3, "{seen:#?}");
    assert_eq!(
        std::fs::read(dst.path().join("report.pdf")).unwrap(),
        b"the user's own"
    );
    assert_eq!(
        std::fs::read(dst.path().join("report (1).pdf")).unwrap(),
        big
    );
    assert_eq!(
        std::fs::read(dst.path().join("Photos/a.jpg")).unwrap(),
        content(70_000, 2)
    );
    assert_eq!(
        std::fs::read(dst.path().join("Photos/2024/b.jpg")).unwrap(),
        b""
    );
    // The sender learns where the first went.
    assert!(seen.iter().any(|(tech, n)| *tech
        && matches!(n, FileNews::Done { stored_as, direction: Direction::Sending, .. } if stored_as == "report (1).pdf")));
    // The offer named its files once, with their hashes.
    assert!(seen.iter().any(|(tech, n)| *tech
        && matches!(n, FileNews::Offering { tag: Some(7), files, total, .. }
            if files.len() == 3 && *total == big.len() as u64 + 70_000
            && files[0].sha256 == sha(&big))));
    // No partial file is left behind.
    let left: Vec<_> = std::fs::read_dir(dst.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(protocol::transfer::PARTIAL_SUFFIX))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_resumes_from_a_partial_file_and_a_wrong_one_is_caught() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let data = content(2 * link::files::BLOCK + 999, 3);
    let path = src.path().join("disk.img");
    std::fs::write(&path, &data).unwrap();
    let partial = dst.path().join(partial_name("disk.img", &sha(&data)));
    let held = link::files::BLOCK + 17;
    std::fs::write(&partial, &data[..held]).unwrap();

    let mut pair = Pair::new().await;
    pair.tech
        .command(Command::Send {
            paths: vec![path.clone()],
            tag: 1,
        })
        .await;
    let seen = pair.run(accept_into(dst.path()), delivered(1)).await;
    assert!(seen.iter().any(|(tech, n)| *tech
        && matches!(n, FileNews::Accepted { resumed, ours: true, .. } if *resumed == held as u64)));
    assert!(seen.iter().any(|(tech, n)| !*tech
        && matches!(n, FileNews::Started { from, direction: Direction::Receiving, .. } if *from == held as u64)));
    assert_eq!(std::fs::read(dst.path().join("disk.img")).unwrap(), data);
    assert!(!partial.exists());

    // A partial file whose bytes are not the file's start: everything arrives, the SHA-256
    // does not match, the file is deleted and nothing takes its name.
    let mut wrong = data[..held].to_vec();
    wrong[5] ^= 0xff;
    std::fs::write(&partial, &wrong).unwrap();
    pair.tech
        .command(Command::Send {
            paths: vec![path],
            tag: 2,
        })
        .await;
    let seen = pair.run(accept_into(dst.path()), delivered(1)).await;
    let failed = seen.iter().find_map(|(tech, n)| match n {
        FileNews::Failed { reason, .. } if *tech => Some(reason.clone()),
        _ => None,
    });
    assert!(
        failed
            .as_deref()
            .is_some_and(|r| r.contains("SHA-256 differs")),
        "{seen:#?}"
    );
    assert!(!partial.exists());
    assert!(!dst.path().join("disk (1).img").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_declined_offer_writes_nothing_and_a_hostile_name_lands_plain() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let path = src.path().join("notes.txt");
    std::fs::write(&path, b"notes").unwrap();
    let mut pair = Pair::new().await;
    pair.tech
        .command(Command::Send {
            paths: vec![path],
            tag: 1,
        })
        .await;
    let declined = |offer: &protocol::transfer::IncomingOffer| Command::Decline {
        offer: offer.id,
        reason: "not now".into(),
    };
    let seen = pair
        .run(declined, |tech, n| {
            tech && matches!(n, FileNews::Declined { .. })
        })
        .await;
    assert!(matches!(
        seen.last(),
        Some((true, FileNews::Declined { reason, ours: true, .. })) if reason == "not now"
    ));
    assert_eq!(std::fs::read_dir(dst.path()).unwrap().count(), 0);

    // A sender that names its file `../../.bashrc` (a program other than ours): it lands as
    // a plain name in the chosen folder, and nothing above it changes.
    let inner = dst.path().join("in");
    let payload = b"echo pwned".to_vec();
    let offer = FileMessage::Offer(Offer {
        id: 0,
        fetch: None,
        files: vec![OfferedFile {
            id: 0,
            path: vec!["../../.bashrc".into()],
            size: payload.len() as u64,
            sha256: sha(&payload),
        }],
    });
    // The sending end is played by hand here: its offer, then the file's stream sealed with its
    // keys.
    let (_server, agent_conn, tech_conn) = connection().await;
    let (agent_keys, tech_keys) = keys();
    let mut agent = Files::start(agent_conn, agent_keys.file_keys(), true);
    agent.command(Command::Peer(offer)).await;
    let out = agent.next().await;
    let Out::News(FileNews::Offered { offer, .. }) = out else {
        panic!("{out:?}")
    };
    assert_eq!(offer.files[0].name(), "bashrc");
    agent
        .command(Command::Accept {
            offer: offer.id,
            dir: inner.clone(),
            by: AcceptedBy::Person,
        })
        .await;
    let accepted = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Out::Peer(m @ FileMessage::Accept { .. }) = agent.next().await {
                return m;
            }
        }
    })
    .await
    .expect("the offer is accepted");
    assert!(matches!(accepted, FileMessage::Accept { ref resume, .. } if resume == &[0]));
    let mut sealer = tech_keys.file_keys().sealer(0);
    let mut records = Vec::new();
    sealer
        .seal_frame(&0u64.to_le_bytes(), false, &mut records)
        .unwrap();
    sealer.seal_frame(&payload, true, &mut records).unwrap();
    let mut stream = tech_conn.open_uni().await.unwrap();
    stream.write_all(&records).await.unwrap();
    stream.finish().unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match agent.next().await {
                Out::News(n @ FileNews::Done { .. }) => return n,
                Out::News(n @ FileNews::Failed { .. }) => panic!("{n:?}"),
                Out::Broken(why) => panic!("broken: {why}"),
                _ => {}
            }
        }
    })
    .await
    .expect("the file arrives");
    let FileNews::Done {
        stored_as, path, ..
    } = done
    else {
        unreachable!()
    };
    assert_eq!(stored_as, "bashrc");
    assert_eq!(path.as_deref(), Some(inner.join("bashrc").as_path()));
    assert_eq!(std::fs::read(inner.join("bashrc")).unwrap(), payload);
    // Nothing else in the chosen folder, nothing beside it.
    assert_eq!(std::fs::read_dir(&inner).unwrap().count(), 1);
    assert_eq!(std::fs::read_dir(dst.path()).unwrap().count(), 1);
}

#[test]
fn a_send_after_a_resumed_link_leaves_out_the_files_that_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("report");
    std::fs::create_dir_all(root.join("pages")).unwrap();
    std::fs::write(root.join("a.txt"), b"first").unwrap();
    std::fs::write(root.join("pages").join("b.txt"), b"second").unwrap();
    let names = |done: &[&str]| -> Result<Vec<String>, String> {
        let done: Vec<String> = done.iter().map(|d| d.to_string()).collect();
        let files = link::files::local_files_but(std::slice::from_ref(&root), &done)?;
        let mut names: Vec<String> = files.iter().map(|f| f.path.join("/")).collect();
        names.sort();
        Ok(names)
    };
    assert_eq!(names(&[]).unwrap(), ["report/a.txt", "report/pages/b.txt"]);
    assert_eq!(names(&["report/a.txt"]).unwrap(), ["report/pages/b.txt"]);
    let all = names(&["report/a.txt", "report/pages/b.txt"]).unwrap_err();
    assert!(all.contains("arrived already"), "{all}");
}
