//! The network does what it is told: a UDP echo server where the relay listens, a client in
//! the agent's namespace. Delay is the round trip asked (within the timer's millisecond), loss
//! is near what was asked each way, a rate limit holds, and a cut link carries nothing until
//! restored. Needs root, iproute2 and nftables.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use harness::{Host, Network, Shape, Side};

/// Starts an echo server on the relay's address, in the relay's namespace.
fn echo(net: &Network) -> std::thread::JoinHandle<anyhow::Result<()>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let thread = net
        .netns(Host::Relay)
        .spawn_thread("echo", move || {
            let s = UdpSocket::bind(harness::network::RELAY_LISTEN)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 2048];
            // Ends when nothing comes for 5 s (the test is over).
            while let Ok((n, from)) = s.recv_from(&mut buf) {
                if &buf[..n] == b"stop" {
                    break;
                }
                s.send_to(&buf[..n], from)?;
            }
            Ok(())
        })
        .unwrap();
    ready_rx.recv().expect("the echo server starts");
    thread
}

/// Runs `f` on a client socket in the agent's namespace, connected to the relay's address.
fn client<T: Send + 'static>(
    net: &Network,
    f: impl FnOnce(UdpSocket) -> anyhow::Result<T> + Send + 'static,
) -> T {
    net.netns(Host::Agent)
        .spawn_thread("client", move || {
            let s = UdpSocket::bind("0.0.0.0:0")?;
            s.connect(Network::relay_addr(Side::Agent))?;
            f(s)
        })
        .unwrap()
        .join()
        .unwrap()
        .unwrap()
}

/// Sends `n` numbered datagrams of `size` bytes, `gap` apart, and counts the echoes that
/// come back; with the round trip of each.
fn ping(s: &UdpSocket, n: u32, size: usize, gap: Duration) -> anyhow::Result<Vec<Duration>> {
    let start = Instant::now();
    let mut rtts = Vec::new();
    let mut buf = vec![0u8; 2048];
    s.set_read_timeout(Some(Duration::from_millis(1)))?;
    let mut sent_at = vec![None; n as usize];
    for i in 0..n {
        let mut msg = vec![0u8; size];
        msg[..4].copy_from_slice(&i.to_le_bytes());
        sent_at[i as usize] = Some(Instant::now());
        s.send(&msg)?;
        let next = start + gap * (i + 1);
        while Instant::now() < next {
            if let Ok(got) = s.recv(&mut buf) {
                let k = u32::from_le_bytes(buf[..4].try_into()?) as usize;
                rtts.push(sent_at[k].unwrap().elapsed());
                let _ = got;
            }
        }
    }
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        if let Ok(_got) = s.recv(&mut buf) {
            let k = u32::from_le_bytes(buf[..4].try_into()?) as usize;
            rtts.push(sent_at[k].unwrap().elapsed());
        }
    }
    Ok(rtts)
}

fn stop(s: &UdpSocket) {
    let _ = s.send(b"stop");
}

#[test]
fn delay_is_the_round_trip_asked() {
    let net = Network::start(Shape::rtt(50), Shape::CLEAN).unwrap();
    let server = echo(&net);
    let mut rtts = client(&net, |s| {
        let r = ping(&s, 50, 100, Duration::from_millis(10));
        stop(&s);
        r
    });
    server.join().unwrap().unwrap();
    rtts.sort();
    assert_eq!(rtts.len(), 50, "nothing is lost on a clean link");
    let (min, median, max) = (rtts[0], rtts[rtts.len() / 2], rtts[rtts.len() - 1]);
    eprintln!("round trips {min:?} .. {median:?} .. {max:?}");
    // Never shorter than asked; the typical one is what was asked. A single late one says
    // how busy the machine is (the tests share two cores), not how the forwarder delays.
    assert!(min >= Duration::from_millis(50), "{min:?}");
    assert!(median < Duration::from_millis(56), "{median:?}");
}

#[test]
fn loss_is_near_what_was_asked_each_way() {
    let net = Network::start(Shape::loss(10), Shape::CLEAN).unwrap();
    let server = echo(&net);
    let n = 2000;
    let rtts = client(&net, move |s| {
        let r = ping(&s, n, 100, Duration::from_micros(500));
        stop(&s);
        r
    });
    let _ = server.join();
    // Both ways lose 10 %: 81 % come back. Binomial, n = 2000: σ ≈ 0.9 %.
    let back = rtts.len() as f64 / f64::from(n);
    eprintln!("{:.1} % came back", back * 100.0);
    assert!((0.77..0.85).contains(&back), "{back}");
    let c = net.counts(Side::Agent);
    // What reached the forwarder lost only the way up.
    let up = c.up_datagrams as f64 / f64::from(n);
    assert!((0.86..0.94).contains(&up), "{c:?}");
}

#[test]
fn a_cut_link_carries_nothing_until_restored() {
    let net = Network::start(Shape::CLEAN, Shape::CLEAN).unwrap();
    let server = echo(&net);
    net.cut(Side::Agent).unwrap();
    let during = client(&net, |s| ping(&s, 20, 100, Duration::from_millis(5)));
    assert!(
        during.is_empty(),
        "{} came through a cut link",
        during.len()
    );
    net.restore(Side::Agent).unwrap();
    let after = client(&net, |s| {
        let r = ping(&s, 20, 100, Duration::from_millis(5));
        stop(&s);
        r
    });
    let _ = server.join();
    assert_eq!(after.len(), 20);
}

#[test]
fn a_rate_limit_holds() {
    // 512 kbit/s: 64 KB a second. Sending 1200-byte datagrams at 2 MB/s for a second, about
    // 64 KB (plus the queue's 100 ms and burst) gets through each way.
    let net = Network::start(Shape::rate(512), Shape::CLEAN).unwrap();
    let server = echo(&net);
    let rtts = client(&net, |s| {
        let r = ping(&s, 1600, 1200, Duration::from_micros(600));
        stop(&s);
        r
    });
    let _ = server.join();
    let bytes = rtts.len() * 1228;
    eprintln!("{} echoes, {bytes} bytes (with headers)", rtts.len());
    assert!(
        (50_000..110_000).contains(&bytes),
        "{bytes} bytes came back"
    );
}
