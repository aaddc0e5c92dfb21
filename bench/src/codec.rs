//! `bench codec`: the screen codec against the peers' video codecs on the corpus.
//!
//! For every `SCRNSEQ1` file in the corpus directory, the frames are fed to
//! `protocol::codec::Encoder` (encode timed on this thread's CPU clock), every update is
//! serialised as it travels (bincode, with its frame length) to count bytes, applied to a
//! `protocol::codec::Decoder` (timed likewise) and the decoded image compared with the source:
//! share of frames bit-exact, and PSNR from the mean squared error over all pixels, frames and
//! the three colour channels (as ffmpeg's psnr filter averages on gbrp), so it compares across
//! systems. The same frames go as raw BGRA through `ffmpeg` with one thread for each peer
//! (`x264`: libx264 ultrafast zerolatency CRF 23; `vp9rt`: libvpx-vp9 realtime cpu-used 7 at
//! 1400 kbit/s; `x264ll`: libx264rgb ultrafast QP 0); its output is decoded by `ffmpeg` back to
//! BGRA and compared the same way. A peer's CPU per frame is its whole process's user + system
//! time divided by the frames (so it has no per-frame distribution: median and p99 are not
//! reported for peers; `encode_ms_mean` is).
//!
//! `psnr_db_moving` (ours, files with lossy regions): PSNR over the pixels of the regions the
//! encoder sent lossy, on the frames where it did, as the viewer saw them.
//! `inexact_tiles_still_1s` (ours): how many times a 64x64 tile of the screen that had not
//! changed for a second was not exact on the viewer's side, summed over the frames (0 when every
//! region is exact within a second of stopping).
//!
//! Our encoder is told which rectangles changed since the previous frame, as the agent's X11
//! capture tells it from DAMAGE (here: per band of 64 rows, from the first to the last changed
//! tile, found outside the timed part).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use protocol::codec::detect::{self, Grid};
use protocol::codec::tile::Rect;
use protocol::codec::{Decoder, Encoder};
use protocol::scrnseq::Reader;

/// Which corpus files a bench reads.
#[derive(clap::Args, Debug)]
pub struct CorpusArgs {
    /// Directory of `SCRNSEQ1` files (`*.scrn`), such as `bench capture` writes; may be given
    /// more than once [default: ../shared/corpus]
    #[arg(long)]
    corpus: Vec<PathBuf>,
    /// Only the files whose name contains this
    #[arg(long)]
    only: Option<String>,
}

impl CorpusArgs {
    /// The `SCRNSEQ1` files of the corpus directories whose name contains `only`, sorted
    /// within each directory.
    pub fn files(&self) -> anyhow::Result<Vec<PathBuf>> {
        let dirs = if self.corpus.is_empty() {
            let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
            vec![if here.is_dir() {
                here
            } else {
                PathBuf::from("../shared/corpus")
            }]
        } else {
            self.corpus.clone()
        };
        let mut all = Vec::new();
        for corpus in &dirs {
            let mut files: Vec<PathBuf> = std::fs::read_dir(corpus)
                .with_context(|| format!("cannot read the corpus directory {}", corpus.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "scrn"))
                .filter(|p| {
                    self.only.as_ref().is_none_or(|o| {
                        p.file_name()
                            .is_some_and(|n| n.to_string_lossy().contains(o.as_str()))
                    })
                })
                .collect();
            files.sort();
            all.extend(files);
        }
        if all.is_empty() {
            let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            bail!("no .scrn files in {}", names.join(", "));
        }
        Ok(all)
    }
}

/// Screen codec against x264, VP9 and lossless x264 through ffmpeg
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Skip the ffmpeg peers (ours only)
    #[arg(long)]
    no_peers: bool,
    /// Only this peer (x264, vp9rt, x264ll); may be given more than once [default: all]
    #[arg(long)]
    peer: Vec<String>,
}

const PEERS: [(&str, &[&str]); 3] = [
    (
        "x264",
        &[
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-crf",
            "23",
            "-threads",
            "1",
            "-f",
            "h264",
        ],
    ),
    (
        "vp9rt",
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "7",
            "-row-mt",
            "1",
            "-lag-in-frames",
            "0",
            "-b:v",
            "1400k",
            "-threads",
            "1",
            "-f",
            "ivf",
        ],
    ),
    (
        "x264ll",
        &[
            "-c:v",
            "libx264rgb",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-pix_fmt",
            "bgr0",
            "-threads",
            "1",
            "-f",
            "h264",
        ],
    ),
];

/// The figures of one system on one file.
#[derive(Debug, Default, Clone)]
struct Figures {
    bytes: u64,
    encode_ms: Vec<f64>,
    encode_ms_unchanged: Vec<f64>,
    encode_ms_mean: f64,
    decode_ms: Vec<f64>,
    decode_ms_mean: f64,
    frames: u64,
    exact: u64,
    se: f64,
    samples: f64,
    moving_se: f64,
    moving_samples: f64,
    /// (frame, tile) pairs where the source tile had been still for a second and the viewer's
    /// was not exact.
    still_inexact: u64,
}

fn percentile(v: &[f64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() - 1) as f64 * p).round() as usize;
    Some(s[i])
}

fn psnr(se: f64, samples: f64) -> Option<f64> {
    if samples == 0.0 {
        return None;
    }
    let mse = se / samples;
    Some(if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    })
}

/// Squared error over B, G, R of two BGRX images.
fn squared_error(a: &[u8], b: &[u8]) -> f64 {
    let mut se = 0u64;
    for (p, q) in a.chunks_exact(4).zip(b.chunks_exact(4)) {
        for c in 0..3 {
            let d = p[c] as i64 - q[c] as i64;
            se += (d * d) as u64;
        }
    }
    se as f64
}

pub(crate) fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the pointer it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

pub(crate) fn open(path: &Path) -> anyhow::Result<Reader<std::io::BufReader<std::fs::File>>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Reader::new(std::io::BufReader::new(f))
        .with_context(|| format!("{} is not a SCRNSEQ1 file", path.display()))
}

/// What changed between two frames, as the X server's DAMAGE would say it (coarser: per band of
/// 64 rows, from the first to the last changed tile), and per tile when it last changed.
struct Damage {
    grid: Grid,
    previous: Vec<u8>,
    rects: Vec<Rect>,
    last_change: Vec<u64>,
}

impl Damage {
    fn new(width: u32, height: u32) -> Self {
        let grid = Grid::new(width, height);
        Self {
            grid,
            previous: Vec::new(),
            rects: Vec::new(),
            last_change: vec![0; grid.tiles()],
        }
    }

    /// The changed rectangles of `frame` (all of it for the first), noting when tiles changed.
    fn update(&mut self, frame: &[u8], t_ms: u64) -> &[Rect] {
        let g = self.grid;
        self.rects.clear();
        if self.previous.len() != frame.len() {
            self.previous = frame.to_vec();
            self.last_change.fill(t_ms);
            self.rects.push(Rect {
                x: 0,
                y: 0,
                w: g.width,
                h: g.height,
            });
            return &self.rects;
        }
        for ty in 0..g.rows {
            let mut band: Option<(usize, usize)> = None;
            for tx in 0..g.cols {
                let i = ty * g.cols + tx;
                if !detect::tile_equal(&g, frame, &self.previous, i) {
                    self.last_change[i] = t_ms;
                    band = Some((band.map_or(tx, |b| b.0), tx + 1));
                }
            }
            if let Some((a, b)) = band {
                let (x, y, _, h) = g.rect(ty * g.cols + a);
                let (bx, _, bw, _) = g.rect(ty * g.cols + b - 1);
                self.rects.push(Rect {
                    x,
                    y,
                    w: bx + bw - x,
                    h,
                });
            }
        }
        self.previous.copy_from_slice(frame);
        &self.rects
    }

    /// Tiles still for at least a second at `t_ms` where `shown` differs from `frame`.
    fn still_inexact(&self, shown: &[u8], frame: &[u8], t_ms: u64) -> u64 {
        (0..self.grid.tiles())
            .filter(|&i| t_ms.saturating_sub(self.last_change[i]) >= 1000)
            .filter(|&i| !detect::tile_equal(&self.grid, shown, frame, i))
            .count() as u64
    }
}

fn ours(path: &Path) -> anyhow::Result<Figures> {
    let mut r = open(path)?;
    let h = r.header();
    let mut enc = Encoder::new(h.width, h.height);
    let mut dec = Decoder::new();
    let mut damage = Damage::new(h.width, h.height);
    let mut fig = Figures::default();
    let mut wire = Vec::new();
    let mut seq = 0u64;
    while let Some((t_ms, frame)) = r.next_frame()? {
        seq += 1;
        let changed = damage.update(frame, u64::from(t_ms));
        let t0 = thread_cpu();
        let update = enc.encode_changed(frame, h.width, h.height, Some(changed), t_ms as u64, seq);
        let ms = (thread_cpu() - t0).as_secs_f64() * 1e3;
        fig.encode_ms.push(ms);
        match &update {
            None => fig.encode_ms_unchanged.push(ms),
            Some(u) => {
                wire.clear();
                protocol::wire::encode_frame_into(u, &mut wire);
                fig.bytes += wire.len() as u64;
                let t0 = thread_cpu();
                let back: protocol::codec::Update = protocol::wire::decode_peer(&wire[4..])
                    .context("an update does not survive the wire")?;
                dec.apply(&back).context("our own update does not apply")?;
                fig.decode_ms.push((thread_cpu() - t0).as_secs_f64() * 1e3);
            }
        }
        if dec.pixels() == frame {
            fig.exact += 1;
        } else {
            fig.se += squared_error(dec.pixels(), frame);
            fig.still_inexact += damage.still_inexact(dec.pixels(), frame, u64::from(t_ms));
            let stride = h.width as usize * 4;
            for (x, y, w, hh) in enc.lossy_rects() {
                for row in y..y + hh {
                    let o = row * stride + x * 4;
                    fig.moving_se +=
                        squared_error(&dec.pixels()[o..o + w * 4], &frame[o..o + w * 4]);
                }
                fig.moving_samples += (w * hh * 3) as f64;
            }
        }
        fig.samples += (frame.len() / 4 * 3) as f64;
        fig.frames += 1;
    }
    fig.encode_ms_mean = fig.encode_ms.iter().sum::<f64>() / fig.frames.max(1) as f64;
    fig.decode_ms_mean = fig.decode_ms.iter().sum::<f64>() / fig.frames.max(1) as f64;
    Ok(fig)
}

fn peer(path: &Path, args: &[&str]) -> anyhow::Result<Figures> {
    let mut r = open(path)?;
    let h = r.header();
    let size = format!("{}x{}", h.width, h.height);
    let rate = (1000 / h.interval_ms.max(1)).to_string();
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("stream");
    let before = children_cpu();
    let mut child = Command::new("ffmpeg")
        .args([
            "-v", "error", "-nostdin", "-threads", "1", "-f", "rawvideo", "-pix_fmt", "bgra",
        ])
        .args(["-s", &size, "-r", &rate, "-i", "pipe:0"])
        .args(args)
        .arg("-y")
        .arg(&out)
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot start ffmpeg (Debian: apt-get install ffmpeg)")?;
    let mut stdin = child.stdin.take().context("ffmpeg stdin")?;
    let mut frames = 0u64;
    while let Some((_, frame)) = r.next_frame()? {
        stdin.write_all(frame).context("ffmpeg stopped reading")?;
        frames += 1;
    }
    drop(stdin);
    if !child.wait()?.success() {
        bail!("ffmpeg failed to encode {}", path.display());
    }
    let encode_cpu = children_cpu() - before;
    let mut fig = Figures {
        bytes: std::fs::metadata(&out)?.len(),
        frames,
        encode_ms_mean: encode_cpu.as_secs_f64() * 1e3 / frames as f64,
        ..Figures::default()
    };
    let before = children_cpu();
    let mut child = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-threads", "1", "-i"])
        .arg(&out)
        .args(["-f", "rawvideo", "-pix_fmt", "bgra", "pipe:1"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start ffmpeg to decode")?;
    let mut stdout = child.stdout.take().context("ffmpeg stdout")?;
    let mut r = open(path)?;
    let mut decoded = vec![0u8; h.frame_bytes()];
    let mut n = 0u64;
    while let Some((_, frame)) = r.next_frame()? {
        stdout
            .read_exact(&mut decoded)
            .with_context(|| format!("ffmpeg decoded only {n} frames"))?;
        n += 1;
        let se = squared_error(&decoded, frame);
        if se == 0.0 {
            fig.exact += 1;
        }
        fig.se += se;
        fig.samples += (frame.len() / 4 * 3) as f64;
    }
    drop(stdout);
    child.wait()?;
    fig.decode_ms_mean = (children_cpu() - before).as_secs_f64() * 1e3 / frames as f64;
    Ok(fig)
}

struct Row {
    scenario: String,
    system: &'static str,
    fig: Figures,
}

fn metrics(row: &Row) -> Vec<(&'static str, Option<f64>, &'static str)> {
    let f = &row.fig;
    let ours = row.system == "ours";
    let mut m = vec![
        ("bytes", Some(f.bytes as f64), "bytes"),
        ("encode_ms_mean", Some(f.encode_ms_mean), "ms"),
    ];
    if ours {
        m.push(("encode_ms_median", percentile(&f.encode_ms, 0.5), "ms"));
        m.push(("encode_ms_p99", percentile(&f.encode_ms, 0.99), "ms"));
        m.push((
            "encode_ms_median_unchanged",
            percentile(&f.encode_ms_unchanged, 0.5),
            "ms",
        ));
        m.push(("decode_ms_median", percentile(&f.decode_ms, 0.5), "ms"));
    } else {
        m.push(("encode_ms_median", Some(f.encode_ms_mean), "ms"));
        m.push(("decode_ms_median", Some(f.decode_ms_mean), "ms"));
    }
    m.push((
        "bitexact_share",
        Some(f.exact as f64 / f.frames.max(1) as f64),
        "share",
    ));
    m.push(("psnr_db", psnr(f.se, f.samples), "dB"));
    if ours && f.moving_samples > 0.0 {
        m.push(("psnr_db_moving", psnr(f.moving_se, f.moving_samples), "dB"));
    }
    if ours {
        m.push((
            "inexact_tiles_still_1s",
            Some(f.still_inexact as f64),
            "tiles",
        ));
    }
    m
}

fn json_value(v: f64) -> serde_json::Value {
    if v.is_infinite() {
        serde_json::Value::String("inf".into())
    } else {
        serde_json::json!((v * 1000.0).round() / 1000.0)
    }
}

fn cell(v: Option<f64>, metric: &str) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.is_infinite() => "inf".into(),
        Some(v) if metric == "bytes" => {
            let s = (v as u64).to_string();
            let mut out = String::new();
            for (i, c) in s.chars().enumerate() {
                if i > 0 && (s.len() - i).is_multiple_of(3) {
                    out.push(',');
                }
                out.push(c);
            }
            out
        }
        Some(v) if metric == "bitexact_share" => format!("{v:.3}"),
        Some(v) if metric == "inexact_tiles_still_1s" => format!("{v:.0}"),
        Some(v) if metric.starts_with("psnr") => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
    }
}

/// Runs the bench and prints its report (a table, or JSON lines with `json`).
pub fn main(args: &Args, json: bool) -> anyhow::Result<()> {
    let files = args.corpus.files()?;
    let mut rows = Vec::new();
    for path in &files {
        let scenario = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        eprintln!("bench codec: {scenario}: ours");
        rows.push(Row {
            scenario: scenario.clone(),
            system: "ours",
            fig: ours(path)?,
        });
        if !args.no_peers {
            let chosen = PEERS
                .iter()
                .filter(|(name, _)| args.peer.is_empty() || args.peer.iter().any(|p| p == name));
            for &(system, peer_args) in chosen {
                eprintln!("bench codec: {scenario}: {system}");
                rows.push(Row {
                    scenario: scenario.clone(),
                    system,
                    fig: peer(path, peer_args)?,
                });
            }
        }
    }
    let mut out = String::new();
    if json {
        for row in &rows {
            for (metric, value, unit) in metrics(row) {
                let Some(value) = value else { continue };
                let line = serde_json::json!({
                    "bench": "codec",
                    "scenario": row.scenario,
                    "system": row.system,
                    "metric": metric,
                    "value": json_value(value),
                    "unit": unit,
                });
                out.push_str(&line.to_string());
                out.push('\n');
            }
        }
    } else {
        out.push_str(&table(&rows));
    }
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .context("cannot write the report")
}

fn table(rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "codec: bytes on the wire, CPU ms per frame on one thread (peers: whole ffmpeg process, \
         mean), bit-exact share, PSNR over B,G,R of the whole sequence"
    );
    let mut scenarios: Vec<&str> = rows.iter().map(|r| r.scenario.as_str()).collect();
    scenarios.dedup();
    for scenario in scenarios {
        let rs: Vec<&Row> = rows.iter().filter(|r| r.scenario == scenario).collect();
        let _ = writeln!(s, "\n{scenario}");
        let _ = write!(s, "  {:<28}", "metric");
        for r in &rs {
            let _ = write!(s, "{:>12}", r.system);
        }
        let _ = writeln!(s);
        let mut names: Vec<&'static str> = Vec::new();
        for r in &rs {
            for (m, _, _) in metrics(r) {
                if !names.contains(&m) {
                    names.push(m);
                }
            }
        }
        for name in names {
            let _ = write!(s, "  {name:<28}");
            for r in &rs {
                let v = metrics(r)
                    .into_iter()
                    .find(|(m, _, _)| *m == name)
                    .and_then(|(_, v, _)| v);
                let _ = write!(s, "{:>12}", cell(v, name));
            }
            let _ = writeln!(s);
        }
        let get = |sys: &str, metric: &str| {
            rs.iter()
                .find(|r| r.system == sys)
                .and_then(|r| metrics(r).into_iter().find(|(m, _, _)| *m == metric))
                .and_then(|(_, v, _)| v)
        };
        if let (Some(ob), Some(xb)) = (get("ours", "bytes"), get("x264", "bytes")) {
            let _ = writeln!(s, "  bytes ours / x264: {:.3}", ob / xb);
        }
        if let (Some(op), Some(xp)) = (get("ours", "psnr_db"), get("x264", "psnr_db")) {
            let _ = writeln!(s, "  PSNR ours - x264: {:+.1} dB", op - xp);
        }
    }
    s
}
