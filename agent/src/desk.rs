//! What the person asks of their support desk, apart from a session: a help request filed from
//! the window (what is wrong, in their words, and the desk's ticket number), with what it says
//! of this machine ([`Machine`]: its name and operating system, as `--request` files it too),
//! and the answer to the desk's one-question survey once the request is closed.
//!
//! The window passes these to the run ([`crate::share`]) as [`ToDesk`], through the person's
//! [`UserSide`](crate::consent::UserSide), on a path of their own: what the terminal types
//! stays for the session. The bounds are the relay's: it keeps no more of a field than
//! [`DESCRIPTION_CHARS`], [`TICKET_CHARS`] and [`COMMENT_CHARS`], so the window takes no more.

use protocol::control::RequestFiling;

/// Most characters of a help request's description the relay keeps.
pub const DESCRIPTION_CHARS: usize = 500;
/// Most characters of a ticket number the relay keeps.
pub const TICKET_CHARS: usize = 100;
/// Most characters of a survey comment the relay keeps.
pub const COMMENT_CHARS: usize = 1000;

/// A help request the person filed in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpAsked {
    /// What is wrong, in their words.
    pub description: String,
    /// The ticket number of their desk's own system, if they have one.
    pub ticket: Option<String>,
}

/// The person's answer to the survey of their closed help request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SurveyAnswer {
    /// How well they were helped, 1 (very badly) to 5 (very well), and what they added.
    Score { score: u8, comment: String },
    /// They chose not to answer.
    Skipped,
}

/// What the person tells the desk from the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToDesk {
    /// File a help request instead of waiting with the code.
    AskHelp(HelpAsked),
    /// The survey's answer.
    Survey(SurveyAnswer),
}

/// What a help request says of the machine it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Machine {
    /// Its name on the network (the kernel's host name).
    pub name: String,
    /// The operating system, as a person names it.
    pub os: String,
}

impl Machine {
    /// This machine: the kernel's host name, and `PRETTY_NAME` of /etc/os-release (the
    /// kernel's name of the system where there is none).
    pub fn this() -> Machine {
        let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
        let os = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|text| pretty_name(&text))
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        Machine { name, os }
    }

    /// The help request for `description` (and the desk's `ticket`) from this machine; a
    /// ticket that is only spaces is none.
    pub fn filing(&self, description: &str, ticket: Option<&str>) -> RequestFiling {
        RequestFiling {
            description: description.trim().to_string(),
            machine: self.name.clone(),
            os: self.os.clone(),
            ticket: ticket
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from),
        }
    }
}

/// `PRETTY_NAME` of an os-release file, unquoted.
pub fn pretty_name(os_release: &str) -> Option<String> {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_is_the_pretty_name_unquoted() {
        let release =
            "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nID=debian\n";
        assert_eq!(
            pretty_name(release).as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
        assert_eq!(
            pretty_name("PRETTY_NAME='Alpine'").as_deref(),
            Some("Alpine")
        );
        assert_eq!(pretty_name("PRETTY_NAME=\"\"\n"), None);
        assert_eq!(pretty_name("ID=arch\n"), None);
    }

    #[test]
    fn a_filing_carries_the_machine_and_a_ticket_only_when_there_is_one() {
        let machine = Machine {
            name: "reception-2".into(),
            os: "Ubuntu 24.04".into(),
        };
        let filing = machine.filing("  the printer stops after each page\n", Some(" T-7 "));
        assert_eq!(
            filing,
            RequestFiling {
                description: "the printer stops after each page".into(),
                machine: "reception-2".into(),
                os: "Ubuntu 24.04".into(),
                ticket: Some("T-7".into()),
            }
        );
        assert_eq!(machine.filing("x", Some("   ")).ticket, None);
        assert_eq!(machine.filing("x", None).ticket, None);
    }
}
