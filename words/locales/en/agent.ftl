# The agent's window: every word the person at the shared computer reads.
# Variables: $relay (HOST:PORT), $time (m:ss), $seconds, $name, $tier, $organisation,
# $description and $software (what the technician's program says), $who, $why.

window-title = Tandem remote assistance

## Before a code
connecting = Connecting to the relay at { $relay }…

## The session code
code-heading = Your session code
code-explain = Read the whole code to your technician: the nine digits, then the four after the dash. The four after the dash never leave this computer; they protect the session.
code-copy = Copy code
code-copied = Copied to the clipboard
code-valid = Valid for { $time }, once.
code-expired = This code has expired. Close this window and start Tandem again for a new one.
code-waiting = Waiting for your technician to enter the code…
code-cancel = Cancel

## Consent
consent-heading = A technician asks to see your screen
consent-vouched = Who is asking, as your support organisation confirms:
consent-account = { $name }, tier { $tier }, { $organisation }
consent-no-account = Nobody vouches for who this is: the technician did not log in to your support organisation.
consent-claims = What their program says about itself (not checked): { $description }, { $software }
consent-abilities = What they will be able to do:
consent-can-control = Allow control: they see your screen and can use your mouse and keyboard.
consent-can-view = View only: they see your screen and cannot touch anything.
consent-recorded = This session is recorded: the technician keeps a log of your screen, their input and your answers.
consent-not-recorded = The technician does not record this session.
consent-countdown = { $seconds ->
    [one] No answer within { $seconds } second denies the request.
   *[other] No answer within { $seconds } seconds denies the request.
}
consent-you-can-stop = You can stop control or end the session at any moment.
consent-allow-control = Allow control
consent-view-only = View only
consent-deny = Deny
consent-answered = Starting the session…
consent-heading-another = Another technician asks to join your session
consent-escalated = { $by } passed your help request on to them, with this note:
consent-escalated-control = If you allow control, control passes to them; { $by } stays and watches until they leave.
consent-monitor = A team lead asks to watch your session. If you allow control, they may also take over control.

## While shared
who-account = { $name } (tier { $tier }, { $organisation })
who-unverified = { $description } (not logged in)
bar-controlling = { $who } is controlling your screen
bar-viewing = { $who } is viewing your screen
bar-quiet = Waiting for the connection of { $who }…
bar-stop-control = Stop control
bar-end = End session
bar-also = Also watching: { $names }

## Ended
ended-heading = The session has ended
ended-you = You ended the session.
ended-denied = You said no: nothing was shared.
ended-timeout = No answer in time: nothing was shared.
ended-technician = The technician ended the session.
ended-technician-left = The technician left: { $why }
ended-source-finished = The shared screen has nothing more to show.
ended-error = The session stopped because of a problem: { $why }
ended-cancelled = Cancelled before anyone connected.
ended-code-mismatch = The technician entered a different code, so nothing was shared. This code is spent; start Tandem again for a new one.
ended-failed = Tandem could not go on: { $why }
ended-close = Close
queue-heading = Your help request
queue-position = You are number { $position } in the queue
queue-request = Request { $request }
queue-waiting = Waiting for a technician to take your request. Keep this window open.
queue-cancel = Withdraw the request
consent-verification = Verification code: your technician sees these six digits too. Ask them to read theirs out; if they differ, deny.
queue-expected = Expected wait: about { $minutes } minutes
