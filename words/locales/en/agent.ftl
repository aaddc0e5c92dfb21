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
code-or-request = No technician to read the code to? Ask your support desk for help instead: your request waits in their queue until a technician takes it.
code-request-help = Request help

## Asking the desk for help instead of a code
help-heading = Ask your support desk for help
help-explain = Your request tells the desk what you write here, with this computer's name and system. A technician takes it from their queue and connects to you; you still decide whether they may see your screen.
help-description = What is wrong? Say it in your own words:
help-description-hint = For example: the printer stops after each page
help-ticket = Ticket number from your desk, if you have one:
help-code-stops = When you send the request, your session code stops working.
help-describe-first = Write what is wrong to send the request.
help-send = Send request
help-back = Back
help-sending = Sending your request to the desk…

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
bar-reconnecting = Connection lost, reconnecting… { $who } cannot see your screen meanwhile.
bar-reconnected = Reconnected after the connection was lost.
bar-stop-control = Stop control
bar-end = End session
bar-also = Also watching: { $names }
bar-clipboard = Share clipboard
bar-clipboard-tip = While on, what you copy can be pasted by the technician in control, and what they copy by you (text and pictures). Switch it off to keep your clipboard to yourself.
bar-browse = Show my folders
bar-browse-tip = While on, the technician in control can look through the folders of this computer and take copies of files from them. Each folder they open is shown here.
bar-browsed = { $who } looked into your folder { $path }

## Chat with the technicians
chat-button = Chat
chat-unread = Chat ({ $n })
chat-heading = Chat with the technician
chat-ask-first = You can write to the technician before you answer, for example to ask who is calling.
chat-you = You
chat-placeholder = Write a message…
chat-send = Send
chat-message = Your message

## Files
files-offer = { $who } wants to send you { $count ->
    [one] { $what }
   *[other] { $what }, { $count } files
} ({ $size }).
files-save-in = Save in:
files-save = Save files
files-decline = Decline
files-receiving = Receiving { $name } from { $who }: { $done } of { $size }
files-sending = Sending { $name } to { $who }: { $done } of { $size }
files-rate = { $rate }/s, { $left } left
files-received = { $name } arrived and was checked: { $place }
files-sent = { $who } received { $name }, checked
files-failed = { $name } did not arrive: { $why }
files-stop = Stop
files-stopped-by-you-in = You stopped { $name }. What arrived is kept: if { $who } sends it again, it continues from there.
files-stopped-by-you-out = You stopped sending { $name } to { $who }.
files-stopped-by-them-in = { $who } stopped sending { $name }. What arrived is kept: if they send it again, it continues from there.
files-stopped-by-them-out = { $who } stopped taking { $name }.
files-interrupted-in = { $name } stopped: the connection to { $who } was lost. What arrived is kept: next time they send it, it continues from there.
files-interrupted-out = { $name } stopped: the connection to { $who } was lost. Next time they fetch it, it continues from where it stopped.

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

## The desk's survey, once it closed a help request
survey-heading = The desk has closed your help request
survey-question = How well were you helped?
survey-score-1 = 1 Very badly
survey-score-2 = 2 Badly
survey-score-3 = 3 Fairly
survey-score-4 = 4 Well
survey-score-5 = 5 Very well
survey-comment = Anything you want to add? (optional)
survey-choose-first = Choose how well you were helped to send your answer.
survey-send = Send answer
survey-skip = Skip
survey-sending = Sending your answer to the desk…
ended-request-heading = Your help request is closed
ended-request-closed = The desk has closed your help request.
ended-request-thanks = The desk has closed your help request. Thank you: your answer went to the desk.
