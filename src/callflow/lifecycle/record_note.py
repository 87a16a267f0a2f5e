"""The note a call leaves on the record, with its transcript, and the attachment past Zoho's size.

The note carries the outcome, the summary, what was collected, any opt-out, and the transcript
with each turn labelled ``Agent:`` or ``Person:``. Zoho keeps at most 65535 characters in a note
(``Note_Content``; see ``zoho_note_max_chars``): past that the note keeps everything but the
transcript, plus the transcript's first lines that fit, and the whole transcript goes on the
record as a text file (:func:`transcript_file_name`) through the Attachments API.

The transcript is the analysis's (ElevenLabs' own, with the agent's corrections), and the
bridge's live one when no analysis came. The session keeps only the analysis's last turns (its
item must stay under DynamoDB's 400 KB), so when those are a cut the whole transcript is read
from the conversation again for the attachment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from callflow.models import Outcome, Session

SPEAKERS = {"agent": "Agent", "user": "Person"}
"""Transcript roles (ElevenLabs' ``agent``/``user``, the bridge's too) as the note names them."""

TRANSCRIPT_HEADING = "Transcript:"
CUT_NOTICE = "[... the whole transcript is attached to the record as {name}]"
REFUSED_NOTICE = "[... cut here: Zoho refused the transcript's attachment ({reason})]"


@dataclass(frozen=True)
class NotePlan:
    """What the note step sends: the note, and the transcript file when it did not fit."""

    title: str
    content: str
    attachment_name: str = ""
    attachment: bytes = b""


def transcript_file_name(session: Session) -> str:
    """The attachment's file name; it carries the session id, which is how a retry finds an
    attachment whose upload answer was lost."""
    return f"call-transcript-{session.session_id}.txt"


def labelled(turns: Iterable[dict[str, Any]]) -> list[str]:
    """One ``Agent: ...`` / ``Person: ...`` line per turn with text (tool-only turns have none);
    an unknown role is shown as it is."""
    lines = []
    for turn in turns:
        text = str(turn.get("message") or turn.get("text") or "").strip()
        if not text:
            continue
        role = str(turn.get("role") or "")
        speaker = SPEAKERS.get(role, role.capitalize() or "Unknown")
        lines.append(f"{speaker}: {' '.join(text.split())}")
    return lines


def stored_turns(session: Session) -> tuple[list[dict[str, Any]], bool]:
    """The transcript the session holds, and whether it is a cut of a longer one: the
    analysis's when there is one, else the bridge's."""
    turns = session.results.get("transcript")
    if isinstance(turns, list) and turns:
        cut = bool(session.results.get("transcript_truncated"))
        return [t for t in turns if isinstance(t, dict)], cut
    return [t for t in session.transcript if isinstance(t, dict)], False


def plan(
    session: Session,
    title: str,
    head: list[str],
    tail: list[str],
    *,
    max_chars: int,
    whole_transcript: Callable[[], list[dict[str, Any]]],
    attachment_refused: str = "",
) -> NotePlan:
    """The note: ``head`` (outcome, summary, collected...), the transcript, then ``tail`` (the
    ids and the session marker, which must survive any cut). Past ``max_chars`` the transcript
    is cut to the lines that fit and goes whole into the attachment; ``whole_transcript`` is
    asked for it only when the stored turns are a cut themselves. When Zoho refused the
    attachment for good (``attachment_refused`` says why), the note says so and nothing is
    attached."""
    turns, cut = stored_turns(session)
    lines = labelled(turns)
    if not lines:
        return NotePlan(title, "\n".join([*head, *tail]))
    full = "\n".join([*head, "", TRANSCRIPT_HEADING, *lines, "", *tail])
    if len(full) <= max_chars and not cut:
        return NotePlan(title, full)
    if cut:
        lines = labelled(whole_transcript()) or lines
        full = "\n".join([*head, "", TRANSCRIPT_HEADING, *lines, "", *tail])
        if len(full) <= max_chars:
            return NotePlan(title, full)
    name = transcript_file_name(session)
    notice = CUT_NOTICE.format(name=name)
    if attachment_refused:
        notice = REFUSED_NOTICE.format(reason=attachment_refused[:200])
    fixed = "\n".join([*head, "", TRANSCRIPT_HEADING, notice, "", *tail])
    room = max_chars - len(fixed) - 1
    first: list[str] = []
    for line in lines:
        if len(line) + 1 > room:
            break
        first.append(line)
        room -= len(line) + 1
    if room < 0:
        # The head alone is too long (a summary of many pages): it is cut, never the tail.
        ending = "\n".join(["", TRANSCRIPT_HEADING, notice, "", *tail])
        content = "\n".join(head)[: max_chars - len(ending)] + ending
    else:
        content = "\n".join([*head, "", TRANSCRIPT_HEADING, *first, notice, "", *tail])
    if attachment_refused:
        return NotePlan(title, content)
    return NotePlan(title, content, name, _file(session, lines))


def _file(session: Session, lines: list[str]) -> bytes:
    """The attachment: a short header naming the call, then every line of the transcript."""
    outcome = session.outcome.value if isinstance(session.outcome, Outcome) else "unknown"
    header = [
        f"Call transcript, {session.module} record {session.record_id}",
        f"Session: {session.session_id}",
        f"Conversation: {session.conversation_id or '-'}",
        f"Outcome: {outcome}",
        "",
    ]
    return ("\n".join([*header, *lines]) + "\n").encode("utf-8")
