"""The SQLite store's statements (bot/store/sqlite.py runs them on its thread).

Every statement is a constant, so sqlite3's statement cache reuses its prepared form.
"""

from bot.ports import EVENT_TEXT_KEYS
from bot.store import rows as codec

# Rows come back as plain tuples (no row factory), read by position: these column lists and
# the unpacking in `rows.conversation` / `rows.messages` must stay in the same order.
CONVERSATION_COLUMNS = codec.CONVERSATION_COLUMNS
MESSAGE_COLUMNS = codec.MESSAGE_COLUMNS

CURRENT = (
    f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
    "WHERE platform = ? AND place = ? ORDER BY n DESC LIMIT 1"
)
GET = f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = ?"
# `CURRENT`, whether anyone but the starter wrote there, and its community's settings: a
# statement each were three of the four a message's `at_place` took (issue 22, fifth round).
AT_PLACE = (
    f"SELECT {codec.QUALIFIED_CONVERSATION_COLUMNS}, "
    "EXISTS (SELECT 1 FROM participants p WHERE p.conversation_id = c.id), "
    "(SELECT settings FROM communities s WHERE s.platform = c.platform "
    "AND s.community = c.community) "
    "FROM conversations c WHERE c.platform = ? AND c.place = ? ORDER BY c.n DESC LIMIT 1"
)
EXISTS = "SELECT 1 FROM conversations WHERE id = ?"
RECENT = (
    f"SELECT {codec.CONTEXT_COLUMNS} FROM messages WHERE conversation_id = ? "
    "ORDER BY seq DESC LIMIT ?"
)
ALL_MESSAGES = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY seq"
EVENTS = "SELECT kind, at, actor, detail FROM events WHERE conversation_id = ? ORDER BY n"
FEEDBACK = "SELECT user_id, text, at FROM feedback WHERE conversation_id = ? ORDER BY n"
# Ends a person earned: their own conversations ended, and others' they were shut out of.
ENDED_COUNT = (
    "SELECT (SELECT COUNT(*) FROM conversations WHERE platform = ?1 AND user_id = ?2 "
    "AND ended_at >= ?3 AND ended = 1 AND ended_reason IS NOT ?4) + "
    "(SELECT COUNT(*) FROM participants p JOIN conversations c ON c.id = p.conversation_id "
    "WHERE p.user_id = ?2 AND p.shut_out = 1 AND p.shut_out_at >= ?3 AND c.platform = ?1)"
)
PARTICIPANTS = f"SELECT {codec.PARTICIPANT_COLUMNS} FROM participants WHERE conversation_id = ?"
# Shut out stamps `shut_out_at` once; a moderator letting them back in clears it.
SAVE_PARTICIPANT = (
    "INSERT INTO participants (conversation_id, user_id, redirects, warned, crisis, shut_out, "
    "shut_out_reason, shut_out_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?6 THEN ?8 END) "
    "ON CONFLICT (conversation_id, user_id) DO UPDATE SET redirects = excluded.redirects, "
    "warned = excluded.warned, crisis = excluded.crisis, shut_out = excluded.shut_out, "
    "shut_out_reason = excluded.shut_out_reason, shut_out_at = CASE WHEN NOT excluded.shut_out "
    "THEN NULL WHEN participants.shut_out THEN participants.shut_out_at ELSE ?8 END"
)
INSERT_CONVERSATION = (
    "INSERT INTO conversations "
    "(id, platform, place, user_id, created_at, updated_at, branched_from, community) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING "
    f"RETURNING {CONVERSATION_COLUMNS}"
)
# Claims the platform event only if the conversation exists, so the existence check costs
# no statement of its own; an empty result means "duplicate or unknown" (see `_unclaimed`).
CLAIM = (
    "INSERT INTO processed_events (platform, event_id, at) SELECT ?1, ?2, ?3 "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?4) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)
FORGET_EVENTS = "DELETE FROM processed_events WHERE at < ?"
RECEIVE = (
    "INSERT INTO processed_events (platform, event_id, at) VALUES (?, ?, ?) "
    "ON CONFLICT DO NOTHING RETURNING 1"
)
INBOX = (
    "INSERT INTO inbox "
    "(platform, event_id, place, user_id, text, message_id, at, community, files) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# A received event is handled by whoever takes its inbox row: the delete decides.
TAKE_RECEIVED = "DELETE FROM inbox WHERE platform = ? AND event_id = ? RETURNING 1"
PENDING = f"SELECT {codec.INBOX_COLUMNS} FROM inbox WHERE at < ? ORDER BY n"
# The reply a turn showed in the place, kept with its message until the turn commits (the
# commit deletes the row): a run killed in between leaves word of it for the next one.
REPLY_SHOWN = (
    "UPDATE inbox SET reply_id = ?, reply_complete = ? WHERE platform = ? AND event_id = ?"
)
SHOWN = (
    "SELECT reply_id, reply_complete FROM inbox "
    "WHERE platform = ? AND event_id = ? AND reply_id <> ''"
)
IN_USE = (
    "SELECT EXISTS (SELECT 1 FROM conversations WHERE platform = ?1 AND place = ?2) "
    "OR EXISTS (SELECT 1 FROM inbox WHERE platform = ?1 AND place = ?2)"
)
# Nothing when the message itself was never received (n < NULL): no order to keep then.
RECEIVED_BEFORE = (
    f"SELECT {codec.INBOX_COLUMNS} FROM inbox WHERE platform = ?1 AND place = ?2 AND n < "
    "(SELECT n FROM inbox WHERE platform = ?1 AND event_id = ?3) ORDER BY n"
)
CLAIMED = "SELECT 1 FROM processed_events WHERE platform = ? AND event_id = ?"
# Whether the event's message waits in the inbox (received, so claimed by its receipt), and
# the user's message of a turn begun for it before, by a process that died before finishing
# it: one statement, as a message received first (every Slack and Discord one) asks both.
RECEIVED_BEGUN = (
    "SELECT EXISTS (SELECT 1 FROM inbox WHERE platform = ?1 AND event_id = ?2), "
    "(SELECT seq FROM messages WHERE conversation_id = ?3 AND role = 'user' "
    "AND platform_message_id = ?4 ORDER BY seq DESC LIMIT 1)"
)
TOUCH = "UPDATE conversations SET updated_at = ? WHERE id = ?"
# The seq is computed in the INSERT: one past the conversation's last message.
INSERT_MESSAGE = (
    "INSERT INTO messages (conversation_id, seq, role, text, api, at, user_id, "
    "platform_message_id, in_context) "
    "SELECT ?1, COALESCE(MAX(seq), 0) + 1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 "
    "FROM messages WHERE conversation_id = ?1"
)
INSERT_MESSAGE_RETURNING_SEQ = INSERT_MESSAGE + " RETURNING seq"
INSERT_EVENT = (
    "INSERT INTO events (conversation_id, kind, at, actor, detail) VALUES (?, ?, ?, ?, ?)"
)
# For add_events, which must raise UnknownConversation rather than a foreign-key error, with
# the existence check riding along in each insert rather than a statement of its own.
INSERT_EVENT_IF_EXISTS = (
    "INSERT INTO events (conversation_id, kind, at, actor, detail) SELECT ?1, ?2, ?3, ?4, ?5 "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?1)"
)
QUEUE = "INSERT INTO outbox (event_n, target, due_at) VALUES (?, ?, ?)"
OUTBOX_DONE = "DELETE FROM outbox WHERE event_n = ? AND target = ?"
OUTBOX_RETRY = "UPDATE outbox SET due_at = ? WHERE event_n = ? AND target = ?"
INSERT_FEEDBACK_IF_EXISTS = (
    "INSERT INTO feedback (conversation_id, user_id, text, at) SELECT ?1, ?2, ?3, ?4 "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = ?1) RETURNING 1"
)
UPDATE_LADDER = (
    "UPDATE conversations SET redirects = ?1, warned = ?2, crisis = ?3, ended = ?4, "
    "ended_by = ?5, ended_reason = ?6, updated_at = ?7, "
    "ended_at = CASE WHEN NOT ?4 THEN NULL WHEN ended THEN ended_at ELSE ?7 END, "
    f"end_proposed = ?9 WHERE id = ?8 RETURNING {CONVERSATION_COLUMNS}"
)
EXCLUDE = "UPDATE messages SET in_context = 0 WHERE conversation_id = ? AND seq = ? RETURNING 1"
# Record a notice unless this person was notified less than `quiet` ago: the row is only
# (re)written when the last notice is at or before ?4 = at - quiet, and RETURNING says so.
# Times are fixed-width UTC text, so text order is time order.
NOTIFY_UNLESS_QUIET = (
    "INSERT INTO blocked_notices (conversation_id, user_id, at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (conversation_id, user_id) DO UPDATE SET at = excluded.at "
    "WHERE blocked_notices.at <= ?4 RETURNING 1"
)


# --- retention, privacy, review ------------------------------------------------------------

# json_remove paths for the free-text keys of event details, and a test that any is there.
TEXT_PATHS = ", ".join(f"'$.{key}'" for key in EVENT_TEXT_KEYS)
HAS_TEXT = " OR ".join(f"json_type(detail, '$.{key}') IS NOT NULL" for key in EVENT_TEXT_KEYS)
STRIP_EVENT_TEXT = f"detail = json_remove(detail, {TEXT_PATHS})"

PURGE_MESSAGES = (
    "UPDATE messages SET text = '', api = '[]', in_context = 0 "
    "WHERE at < ? AND (text != '' OR api != '[]')"
)
PURGE_FEEDBACK = "UPDATE feedback SET text = '' WHERE at < ? AND text != ''"
PURGE_EVENTS = f"UPDATE events SET {STRIP_EVENT_TEXT} WHERE at < ? AND ({HAS_TEXT})"
PURGE_INBOX = "DELETE FROM inbox WHERE at < ?"

OWN = "SELECT id FROM conversations WHERE platform = ?1 AND user_id = ?2"
ON_PLATFORM = "SELECT id FROM conversations WHERE platform = ?1"
TOUCHED = (
    f"SELECT id FROM conversations WHERE platform = ?1 AND user_id = ?2 "
    f"UNION SELECT conversation_id FROM messages WHERE user_id = ?2 "
    f"AND conversation_id IN ({ON_PLATFORM}) "
    f"UNION SELECT conversation_id FROM feedback WHERE user_id = ?2 "
    f"AND conversation_id IN ({ON_PLATFORM})"
)
FORGET_REPLIES = f"DELETE FROM messages WHERE role = 'assistant' AND conversation_id IN ({OWN})"
FORGET_MESSAGES = f"DELETE FROM messages WHERE user_id = ?2 AND conversation_id IN ({ON_PLATFORM})"
FORGET_FEEDBACK = f"DELETE FROM feedback WHERE user_id = ?2 AND conversation_id IN ({ON_PLATFORM})"
FORGET_INBOX = "DELETE FROM inbox WHERE platform = ?1 AND user_id = ?2"
FORGET_NOTICES = (
    f"DELETE FROM blocked_notices WHERE user_id = ?2 AND conversation_id IN ({ON_PLATFORM})"
)
# In their own conversations every note and explanation may quote them; elsewhere, the
# feedback they gave.
FORGET_EVENT_TEXT = (
    f"UPDATE events SET {STRIP_EVENT_TEXT} WHERE ({HAS_TEXT}) AND ("
    f"conversation_id IN ({OWN}) OR (json_extract(detail, '$.user_id') = ?2 "
    f"AND conversation_id IN ({ON_PLATFORM})))"
)

PERSON_CONVERSATIONS = f"SELECT {CONVERSATION_COLUMNS} FROM conversations " + (
    "WHERE platform = ?1 AND user_id = ?2 ORDER BY n"
)
PERSON_MESSAGES = (
    f"SELECT conversation_id, {MESSAGE_COLUMNS} FROM messages WHERE user_id = ?2 "
    f"AND conversation_id IN ({ON_PLATFORM}) ORDER BY at, conversation_id, seq"
)
PERSON_FEEDBACK = (
    f"SELECT conversation_id, text, at FROM feedback WHERE user_id = ?2 "
    f"AND conversation_id IN ({ON_PLATFORM}) ORDER BY n"
)
PERSON_WAITING = (
    f"SELECT {codec.INBOX_COLUMNS} FROM inbox WHERE platform = ?1 AND user_id = ?2 ORDER BY n"
)

# Feedback newer than the conversation's last decision (a review, or any reopen) waits.
AWAITING_MARKS = (
    f"SELECT * FROM (SELECT {CONVERSATION_COLUMNS}, ("
    "SELECT MIN(w.at) FROM events w WHERE w.conversation_id = c.id AND w.kind = 'would_end' "
    "AND w.at > COALESCE((SELECT MAX(e.at) FROM events e WHERE e.conversation_id = c.id "
    "AND e.kind = 'review' AND json_extract(e.detail, '$.participant') IS NULL), '')"
    ") AS waiting_since "
    "FROM conversations c WHERE (?1 IS NULL OR c.platform = ?1) "
    "AND (?3 IS NULL OR c.community = ?3)) AS q "
    "WHERE waiting_since IS NOT NULL ORDER BY waiting_since LIMIT ?2"
)
# Days are the first ten characters of the fixed-width UTC text (`_to_text`).
DAILY = (
    "SELECT substr(e.at, 1, 10), CASE e.kind "
    "WHEN 'end' THEN 'end:' || COALESCE(json_extract(e.detail, '$.reason'), '?') "
    "WHEN 'review' THEN 'review:' || COALESCE(json_extract(e.detail, '$.decision'), '?') "
    "ELSE e.kind END, COUNT(*) "
    "FROM events e JOIN conversations c ON c.id = e.conversation_id "
    "WHERE c.platform = ?1 AND c.community = ?2 AND e.at >= ?3 AND e.kind IN "
    "('redirect', 'warning', 'crisis_flagged', 'end', 'feedback', 'review', 'would_end', "
    "'model_unavailable') GROUP BY 1, 2 "
    "UNION ALL SELECT substr(created_at, 1, 10), 'conversation', COUNT(*) FROM conversations "
    "WHERE platform = ?1 AND community = ?2 AND created_at >= ?3 GROUP BY 1"
)
REVIEW_DECISIONS = (
    "SELECT json_extract(detail, '$.decision'), COUNT(*) FROM events "
    "WHERE kind = 'review' AND at >= ? GROUP BY 1"
)
AWAITING_REVIEW = (
    f"SELECT * FROM (SELECT {CONVERSATION_COLUMNS}, ("
    # The starter's feedback, and decisions on their end: a shut-out person's feedback and
    # its decisions (`participant` in the detail) are items of their own.
    "SELECT MIN(f.at) FROM feedback f WHERE f.conversation_id = c.id AND f.user_id = c.user_id "
    "AND f.at > COALESCE((SELECT MAX(e.at) FROM events e WHERE e.conversation_id = c.id "
    "AND e.kind IN ('review', 'reopen') AND json_extract(e.detail, '$.participant') IS NULL), "
    "'')) AS waiting_since "
    "FROM conversations c WHERE c.ended = 1 AND (?1 IS NULL OR c.platform = ?1) "
    "AND (?3 IS NULL OR c.community = ?3) "
    # Only conversations someone gave feedback on can wait; without this every ended
    # conversation's subqueries run (bench/dashboard_bench.py's review queue).
    "AND c.id IN (SELECT conversation_id FROM feedback)) AS q "
    "WHERE waiting_since IS NOT NULL ORDER BY waiting_since LIMIT ?2"
)
QUALIFIED = codec.QUALIFIED_CONVERSATION_COLUMNS
# Feedback from someone shut out, newer than their shut-out and than the last decision on
# it (a `review` naming them; a readmit clears the shut-out itself). Driven from the
# feedback table, small next to participants, through participants' primary key.
DISPUTED_SHUT_OUTS = (
    f"SELECT * FROM (SELECT {QUALIFIED}, p.user_id AS shut_out_user, ("
    "SELECT MIN(f.at) FROM feedback f WHERE f.conversation_id = p.conversation_id "
    "AND f.user_id = p.user_id AND f.at >= p.shut_out_at AND f.at > COALESCE(("
    "SELECT MAX(e.at) FROM events e WHERE e.conversation_id = p.conversation_id "
    "AND e.kind = 'review' AND json_extract(e.detail, '$.participant') = p.user_id), '')"
    ") AS waiting_since "
    "FROM participants p JOIN conversations c ON c.id = p.conversation_id "
    "WHERE p.shut_out = 1 AND (?1 IS NULL OR c.platform = ?1) "
    "AND (?3 IS NULL OR c.community = ?3) "
    "AND (p.conversation_id, p.user_id) IN (SELECT conversation_id, user_id FROM feedback)) "
    "AS q WHERE waiting_since IS NOT NULL ORDER BY waiting_since LIMIT ?2"
)


# --- per-community settings ------------------------------------------------------------

COMMUNITY = "SELECT settings FROM communities WHERE platform = ? AND community = ?"
SET_COMMUNITY = (
    "INSERT INTO communities (platform, community, settings, updated_at, updated_by) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (platform, community) DO UPDATE SET "
    "settings = excluded.settings, updated_at = excluded.updated_at, "
    "updated_by = excluded.updated_by"
)
COMMUNITIES = (
    "SELECT platform, community, settings, updated_at, updated_by FROM communities "
    "WHERE (?1 IS NULL OR platform = ?1) ORDER BY platform, community"
)
