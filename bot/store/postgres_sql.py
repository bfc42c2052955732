"""The PostgreSQL store's statements (bot/store/postgres.py runs them).

They mirror SQLite's (bot/store/sqlite.py) where the dialects allow. A statement that a
batch runs for several calls at once ends each row with its last parameter, the call's
number, so that the batch can hand each caller its own rows.
"""

from bot.ports import EVENT_TEXT_KEYS
from bot.store import rows as codec

CONVERSATION_COLUMNS = codec.CONVERSATION_COLUMNS
MESSAGE_COLUMNS = codec.MESSAGE_COLUMNS

CURRENT = (
    f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
    "WHERE platform = $1 AND place = $2 ORDER BY n DESC LIMIT 1"
)
GET = f"SELECT {CONVERSATION_COLUMNS} FROM conversations WHERE id = $1"
EXISTS = "SELECT 1 FROM conversations WHERE id = $1"
RECENT = (
    f"SELECT {codec.CONTEXT_COLUMNS} FROM messages WHERE conversation_id = $1 "
    "ORDER BY seq DESC LIMIT $2"
)
ALL_MESSAGES = f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 ORDER BY seq"
EVENTS = "SELECT kind, at, actor, detail FROM events WHERE conversation_id = $1 ORDER BY n"
FEEDBACK = "SELECT user_id, text, at FROM feedback WHERE conversation_id = $1 ORDER BY n"
# Ends a person earned: their own conversations ended, and others' they were shut out of.
ENDED_COUNT = (
    "SELECT (SELECT COUNT(*) FROM conversations WHERE platform = $1 AND user_id = $2 "
    "AND ended_at >= $3 AND ended AND ended_reason IS DISTINCT FROM $4) + "
    "(SELECT COUNT(*) FROM participants p JOIN conversations c ON c.id = p.conversation_id "
    "WHERE p.user_id = $2 AND p.shut_out AND p.shut_out_at >= $3 AND c.platform = $1)"
)
PARTICIPANTS = f"SELECT {codec.PARTICIPANT_COLUMNS} FROM participants WHERE conversation_id = $1"
# Places read in one round trip, each as at_place needs it, for every turn that asked while
# the round trip before was under way ($1..$4: platform, place, event id and community of
# each, as arrays). A place's rows: the messages received there before the one at hand, as
# one array per inbox column (one row, even when there are none), then the conversation and
# everyone else's ladder, a row per participant, and the community's own settings. Nothing
# is earlier when the message itself was never received (n < NULL): no order to keep then.
AT_PLACES = (
    "SELECT q.i, e.*, c.*, p.user_id AS p_user, p.redirects, p.warned, p.crisis, "
    "p.shut_out, p.shut_out_reason, s.settings "
    "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY "
    "AS q(platform, place, event_id, community, i) "
    "CROSS JOIN LATERAL (SELECT "
    + ", ".join(f"array_agg({column} ORDER BY n)" for column in codec.INBOX_COLUMNS.split(", "))
    + " FROM inbox WHERE platform = q.platform AND place = q.place AND n < "
    "(SELECT n FROM inbox WHERE platform = q.platform AND event_id = q.event_id)) e "
    f"LEFT JOIN LATERAL (SELECT {CONVERSATION_COLUMNS} FROM conversations "
    "WHERE platform = q.platform AND place = q.place ORDER BY n DESC LIMIT 1) c ON true "
    "LEFT JOIN participants p ON p.conversation_id = c.id "
    "LEFT JOIN communities s ON s.platform = q.platform "
    "AND s.community = COALESCE(c.community, q.community) AND s.community <> '' "
    "ORDER BY q.i, p.user_id"
)
EARLIER = 1 + len(codec.INBOX_COLUMNS.split(", "))  # where a row of AT_PLACES turns to c.*
PARTICIPANT_AT = EARLIER + 16  # and to the participant
SETTINGS = PARTICIPANT_AT + 6  # and to the community's settings
# Shut out stamps `shut_out_at` once; a moderator letting them back in clears it.
PARTICIPANT_COLUMNS = (
    "participants (conversation_id, user_id, redirects, warned, crisis, shut_out, "
    "shut_out_reason, shut_out_at)"
)
PARTICIPANT_CONFLICT = (
    "ON CONFLICT (conversation_id, user_id) DO UPDATE SET redirects = excluded.redirects, "
    "warned = excluded.warned, crisis = excluded.crisis, shut_out = excluded.shut_out, "
    "shut_out_reason = excluded.shut_out_reason, shut_out_at = CASE WHEN NOT excluded.shut_out "
    "THEN NULL WHEN participants.shut_out THEN participants.shut_out_at ELSE {at} END"
)
SAVE_PARTICIPANT = (
    f"INSERT INTO {PARTICIPANT_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, "
    "CASE WHEN $6 THEN $8::timestamptz END) " + PARTICIPANT_CONFLICT.format(at="$8")
)
# `last_seq` numbers a conversation's messages. It is raised by the UPDATE that also locks
# the conversation's row, and PostgreSQL re-reads a row it waited for, so two processes
# appending at once get different numbers (MAX(seq) + 1 would read a stale snapshot).
INSERT_CONVERSATION = (
    "INSERT INTO conversations "
    "(id, platform, place, user_id, created_at, updated_at, branched_from, last_seq, community) "
    "VALUES ($1, $2, $3, $4, $5, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING "
    f"RETURNING {CONVERSATION_COLUMNS}"
)
PENDING = f"SELECT {codec.INBOX_COLUMNS} FROM inbox WHERE at < $1 ORDER BY n"
# The reply a turn showed in the place, kept with its message until the turn commits (the
# commit deletes the row): a run killed in between leaves word of it for the next one.
REPLY_SHOWN = (
    "UPDATE inbox SET reply_id = $1, reply_complete = $2 WHERE platform = $3 AND event_id = $4 "
    "RETURNING $5::integer"  # run with the others noted at the same time (`_each`)
)
SHOWN = (
    "SELECT reply_id, reply_complete FROM inbox "
    "WHERE platform = $1 AND event_id = $2 AND reply_id <> ''"
)
IN_USE = (
    "SELECT EXISTS (SELECT 1 FROM conversations WHERE platform = $1 AND place = $2) "
    "OR EXISTS (SELECT 1 FROM inbox WHERE platform = $1 AND place = $2)"
)
CLAIMED = "SELECT 1 FROM processed_events WHERE platform = $1 AND event_id = $2"
FORGET_EVENTS = "DELETE FROM processed_events WHERE at < $1"
TAKE_RECEIVED = "DELETE FROM inbox WHERE platform = $1 AND event_id = $2"
INSERT_MESSAGE = (
    "INSERT INTO messages (conversation_id, seq, role, text, api, at, user_id, "
    "platform_message_id, in_context) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
)
INSERT_EVENT = (
    "INSERT INTO events (conversation_id, kind, at, actor, detail) VALUES ($1, $2, $3, $4, $5)"
)
QUEUE = "INSERT INTO outbox (event_n, target, due_at) VALUES ($1, $2, $3)"
# SKIP LOCKED: processes claiming at once take different rows instead of queueing on the
# same ones; the new due_at is the lease, committed with the claim.
CLAIM_OUTBOX = (
    "WITH due AS (SELECT event_n, target FROM outbox "
    "WHERE target = ANY($1::text[]) AND due_at <= $2 "
    "ORDER BY event_n LIMIT $4 FOR UPDATE SKIP LOCKED), "
    "claimed AS (UPDATE outbox SET due_at = $3, attempts = outbox.attempts + 1 FROM due "
    "WHERE outbox.event_n = due.event_n AND outbox.target = due.target "
    "RETURNING outbox.event_n, outbox.target, outbox.attempts) "
    f"SELECT {codec.OUTBOX_COLUMNS} FROM claimed o "
    "JOIN events e ON e.n = o.event_n JOIN conversations c ON c.id = e.conversation_id "
    "ORDER BY o.event_n, o.target"
)
OUTBOX_DONE = "DELETE FROM outbox WHERE event_n = $1 AND target = $2"
OUTBOX_RETRY = "UPDATE outbox SET due_at = $3 WHERE event_n = $1 AND target = $2"
INSERT_FEEDBACK_IF_EXISTS = (
    "INSERT INTO feedback (conversation_id, user_id, text, at) "
    "SELECT $1::text, $2::text, $3::text, $4::timestamptz "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $1) RETURNING 1"
)
# $10: how many messages the turn adds.
UPDATE_LADDER = (
    "UPDATE conversations SET redirects = $1, warned = $2, crisis = $3, ended = $4, "
    "ended_by = $5, ended_reason = $6, updated_at = $7, "
    "ended_at = CASE WHEN NOT $4 THEN NULL WHEN ended THEN ended_at ELSE $7 END, "
    "end_proposed = $9, last_seq = last_seq + $10::integer "
    f"WHERE id = $8 RETURNING {CONVERSATION_COLUMNS}, last_seq"
)
EXCLUDE = (
    "UPDATE messages SET in_context = false WHERE conversation_id = $1 AND seq = $2 RETURNING 1"
)

# The hot paths are one statement each: one round trip, and atomic without BEGIN/COMMIT.
# Every WITH part runs to completion whether or not the rest reads it (PostgreSQL's rule).
#
# `go` holds a row when this call claims the event, or takes it from those received (a
# received event's claim exists already, so at most one of the two can succeed). A claim of
# the same event by another process waits for ours to commit, then inserts nothing; of two
# deleting one inbox row, the second finds it gone: either way one process goes on.
CLAIM_OR_TAKE = (
    "WITH claimed AS ("
    "INSERT INTO processed_events (platform, event_id, at) "
    "SELECT $1::text, $2::text, $3::timestamptz "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $4::text) "
    "ON CONFLICT DO NOTHING RETURNING 1), "
    "taken AS (DELETE FROM inbox WHERE platform = $1 AND event_id = $2 "
    "AND EXISTS (SELECT 1 FROM conversations WHERE id = $4) RETURNING 1), "
    "go AS (SELECT 1 FROM claimed UNION ALL SELECT 1 FROM taken)"
)
# For a turn: claimed now, or received before. The received row stays until the turn
# commits, so that a process dying mid-turn leaves it for the next start-up (`pending`).
# `begun` is the user's message of a turn begun before, by a process that died before
# finishing it: then that message's number comes back (true), and nothing is stored again.
BEGIN_TURN = (
    "WITH begun AS (SELECT m.seq FROM messages m WHERE m.conversation_id = $4::text "
    "AND m.role = 'user' AND m.platform_message_id = $9::text AND $9::text <> '' "
    "AND EXISTS (SELECT 1 FROM inbox WHERE platform = $1::text AND event_id = $2::text) "
    "ORDER BY m.seq DESC LIMIT 1), "
    "claimed AS (INSERT INTO processed_events (platform, event_id, at) "
    "SELECT $1, $2, $3::timestamptz "
    "WHERE EXISTS (SELECT 1 FROM conversations WHERE id = $4) "
    "AND NOT EXISTS (SELECT 1 FROM begun) ON CONFLICT DO NOTHING RETURNING 1), "
    "received AS (SELECT 1 FROM inbox WHERE platform = $1 AND event_id = $2 "
    "AND EXISTS (SELECT 1 FROM conversations WHERE id = $4)), "
    "go AS (SELECT 1 FROM claimed UNION ALL SELECT 1 FROM received), "
    "touched AS (UPDATE conversations SET updated_at = $3, last_seq = last_seq + 1 "
    "WHERE id = $4 AND EXISTS (SELECT 1 FROM go) AND NOT EXISTS (SELECT 1 FROM begun) "
    "RETURNING last_seq), "
    "added AS (INSERT INTO messages (conversation_id, seq, role, text, api, at, user_id, "
    "platform_message_id, in_context) "
    "SELECT $4, last_seq, $5::text, $6::text, $7::text, $3, $8::text, $9, $10::boolean "
    "FROM touched RETURNING seq) "
    "SELECT seq FROM added UNION ALL SELECT seq FROM begun"
)
# The same, and the newest $11 messages before it, newest first (the statement's snapshot
# holds them but not what it adds): `part` 0 is the message stored now, 1 the one a turn
# begun before stored, 2 the history; each row ends with $12, the call's number among the
# turns begun at the same time (`_each`).
BEGIN_TURN_WITH_CONTEXT = (
    BEGIN_TURN.removesuffix("SELECT seq FROM added UNION ALL SELECT seq FROM begun")
    + ", history AS (SELECT seq, role, in_context, api FROM messages "
    "WHERE conversation_id = $4 ORDER BY seq DESC LIMIT $11) "
    "SELECT 0 AS part, seq, NULL::text, NULL::boolean, NULL::text, $12::integer FROM added "
    "UNION ALL SELECT 1, seq, NULL, NULL, NULL, $12 FROM begun "
    "UNION ALL SELECT 2, seq, role, in_context, api, $12 FROM history ORDER BY 1, 2 DESC"
)
# (claimed or taken, notified). ON CONFLICT DO UPDATE locks the row and re-checks the WHERE
# on its newest version, so two processes' blocked messages from one person cannot both
# notify within `quiet`: the row is only (re)written when the last notice is at or before
# $6 = at - quiet. A NULL $6 means "quiet for ever" (an interval beyond the calendar).
RECORD_BLOCKED = (
    f"{CLAIM_OR_TAKE}, "
    "notified AS (INSERT INTO blocked_notices (conversation_id, user_id, at) "
    "SELECT $4, $5::text, $3 WHERE EXISTS (SELECT 1 FROM go) "
    "ON CONFLICT (conversation_id, user_id) DO UPDATE SET at = excluded.at "
    "WHERE $6::timestamptz IS NOT NULL AND blocked_notices.at <= $6 RETURNING 1) "
    "SELECT EXISTS (SELECT 1 FROM go), EXISTS (SELECT 1 FROM notified)"
)
# Messages delivered together, kept in one statement in the order they came ($1..$9 the
# inbox columns as arrays). A second copy of an event in the same batch is not kept again:
# only an event's first copy there can be claimed, the rest find it claimed.
RECEIVE = (
    "WITH given AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
    "$5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::text[]) WITH ORDINALITY "
    "AS g(platform, event_id, place, user_id, text, message_id, at, community, files, i)), "
    "firsts AS (SELECT DISTINCT ON (platform, event_id) * FROM given "
    "ORDER BY platform, event_id, i), "
    "claimed AS (INSERT INTO processed_events (platform, event_id, at) "
    "SELECT platform, event_id, at FROM firsts ON CONFLICT DO NOTHING "
    "RETURNING platform, event_id), "
    "kept AS (INSERT INTO inbox "
    "(platform, event_id, place, user_id, text, message_id, at, community, files) "
    "SELECT f.platform, f.event_id, f.place, f.user_id, f.text, f.message_id, f.at, "
    "f.community, f.files FROM firsts f JOIN claimed c "
    "ON c.platform = f.platform AND c.event_id = f.event_id ORDER BY f.i RETURNING 1) "
    "SELECT f.i FROM firsts f JOIN claimed c "
    "ON c.platform = f.platform AND c.event_id = f.event_id"
)
# The turn's messages and events go in as arrays, in order, after the last message; the row
# ends with $30, the call's number among the turns committed at the same time (`_each`).
COMMIT_TURN = (
    f"WITH updated AS ({UPDATE_LADDER}), "
    "added AS (INSERT INTO messages (conversation_id, seq, role, text, api, at, user_id, "
    "platform_message_id, in_context) "
    "SELECT $8, updated.last_seq - $10 + m.ord, m.role, m.text, m.api, m.at, m.user_id, "
    "m.pmid, m.in_context "
    "FROM updated, unnest($11::text[], $12::text[], $13::text[], $14::timestamptz[], "
    "$15::text[], $16::text[], $17::boolean[]) "
    "WITH ORDINALITY AS m(role, text, api, at, user_id, pmid, in_context, ord)), "
    "logged AS (INSERT INTO events (conversation_id, kind, at, actor, detail) "
    "SELECT $8, e.kind, e.at, e.actor, e.detail "
    "FROM unnest($18::text[], $19::timestamptz[], $20::text[], $21::text[]) "
    "WITH ORDINALITY AS e(kind, at, actor, detail, ord) "
    "WHERE EXISTS (SELECT 1 FROM updated) ORDER BY e.ord), "
    # The message answered leaves the received ones ($22, $23: NULL when none)...
    "taken AS (DELETE FROM inbox WHERE platform = $22::text AND event_id = $23::text "
    "AND EXISTS (SELECT 1 FROM updated) RETURNING 1), "
    # ...and the ladder of its author, when not the starter, is saved ($24: NULL when so).
    f"joined AS (INSERT INTO {PARTICIPANT_COLUMNS} "
    "SELECT $8, $24::text, $25::integer, $26::boolean, $27::boolean, $28::boolean, $29::text, "
    "CASE WHEN $28 THEN $7 END FROM updated WHERE $24 IS NOT NULL "
    + PARTICIPANT_CONFLICT.format(at="$7")
    + f" RETURNING 1) SELECT {CONVERSATION_COLUMNS}, $30::integer FROM updated"
)


# --- retention, privacy, review ------------------------------------------------------------

# Event details are JSON kept as text (see the migrations), so their free-text keys are
# removed in Python, which keeps the other keys in their order; LIKE only narrows the rows.
MAY_HAVE_TEXT = " OR ".join(f"detail LIKE '%\"{key}\"%'" for key in EVENT_TEXT_KEYS)
EVENTS_WITH_TEXT_BEFORE = (
    f"SELECT n, conversation_id, detail FROM events WHERE at < $1 AND ({MAY_HAVE_TEXT})"
)
ON_PLATFORM = "SELECT id FROM conversations WHERE platform = $1"
EVENTS_WITH_TEXT_ON_PLATFORM = (
    f"SELECT n, conversation_id, detail FROM events "
    f"WHERE conversation_id IN ({ON_PLATFORM}) AND ({MAY_HAVE_TEXT})"
)
UPDATE_DETAIL = "UPDATE events SET detail = $2 WHERE n = $1"
PURGE_MESSAGES = (
    "UPDATE messages SET text = '', api = '[]', in_context = false "
    "WHERE at < $1 AND (text <> '' OR api <> '[]')"
)
PURGE_FEEDBACK = "UPDATE feedback SET text = '' WHERE at < $1 AND text <> ''"
PURGE_INBOX = "DELETE FROM inbox WHERE at < $1"

OWN = "SELECT id FROM conversations WHERE platform = $1 AND user_id = $2"
TOUCHED = (
    f"{OWN} "
    f"UNION SELECT conversation_id FROM messages WHERE user_id = $2 "
    f"AND conversation_id IN ({ON_PLATFORM}) "
    f"UNION SELECT conversation_id FROM feedback WHERE user_id = $2 "
    f"AND conversation_id IN ({ON_PLATFORM})"
)
FORGET_REPLIES = f"DELETE FROM messages WHERE role = 'assistant' AND conversation_id IN ({OWN})"
FORGET_MESSAGES = f"DELETE FROM messages WHERE user_id = $2 AND conversation_id IN ({ON_PLATFORM})"
FORGET_FEEDBACK = f"DELETE FROM feedback WHERE user_id = $2 AND conversation_id IN ({ON_PLATFORM})"
FORGET_INBOX = "DELETE FROM inbox WHERE platform = $1 AND user_id = $2"
FORGET_NOTICES = (
    f"DELETE FROM blocked_notices WHERE user_id = $2 AND conversation_id IN ({ON_PLATFORM})"
)

PERSON_CONVERSATIONS = (
    f"SELECT {CONVERSATION_COLUMNS} FROM conversations "
    "WHERE platform = $1 AND user_id = $2 ORDER BY n"
)
PERSON_MESSAGES = (
    f"SELECT conversation_id, {MESSAGE_COLUMNS} FROM messages WHERE user_id = $2 "
    f"AND conversation_id IN ({ON_PLATFORM}) ORDER BY at, conversation_id, seq"
)
PERSON_FEEDBACK = (
    f"SELECT conversation_id, text, at FROM feedback WHERE user_id = $2 "
    f"AND conversation_id IN ({ON_PLATFORM}) ORDER BY n"
)
PERSON_WAITING = (
    f"SELECT {codec.INBOX_COLUMNS} FROM inbox WHERE platform = $1 AND user_id = $2 ORDER BY n"
)

# Feedback newer than the conversation's last decision (a review, or any reopen) waits.
AWAITING_MARKS = (
    f"SELECT * FROM (SELECT {CONVERSATION_COLUMNS}, ("
    "SELECT MIN(w.at) FROM events w WHERE w.conversation_id = c.id AND w.kind = 'would_end' "
    "AND w.at > COALESCE((SELECT MAX(e.at) FROM events e WHERE e.conversation_id = c.id "
    "AND e.kind = 'review' AND e.detail::json->>'participant' IS NULL), "
    "'-infinity'::timestamptz)) AS waiting_since "
    "FROM conversations c WHERE ($1::text IS NULL OR c.platform = $1) "
    "AND ($3::text IS NULL OR c.community = $3)) AS q "
    "WHERE waiting_since IS NOT NULL ORDER BY waiting_since LIMIT $2"
)
DAILY = (
    "SELECT to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), CASE e.kind "
    "WHEN 'end' THEN 'end:' || COALESCE(e.detail::json->>'reason', '?') "
    "WHEN 'review' THEN 'review:' || COALESCE(e.detail::json->>'decision', '?') "
    "ELSE e.kind END, COUNT(*) "
    "FROM events e JOIN conversations c ON c.id = e.conversation_id "
    "WHERE c.platform = $1 AND c.community = $2 AND e.at >= $3 AND e.kind IN "
    "('redirect', 'warning', 'crisis_flagged', 'end', 'feedback', 'review', 'would_end', "
    "'model_unavailable') GROUP BY 1, 2 "
    "UNION ALL SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'conversation', "
    "COUNT(*) FROM conversations "
    "WHERE platform = $1 AND community = $2 AND created_at >= $3 GROUP BY 1"
)
REVIEW_DECISIONS = (
    "SELECT detail::json->>'decision', COUNT(*) FROM events "
    "WHERE kind = 'review' AND at >= $1 GROUP BY 1"
)
AWAITING_REVIEW = (
    f"SELECT * FROM (SELECT {CONVERSATION_COLUMNS}, ("
    # Only the starter's side (see the SQLite store).
    "SELECT MIN(f.at) FROM feedback f WHERE f.conversation_id = c.id AND f.user_id = c.user_id "
    "AND f.at > COALESCE((SELECT MAX(e.at) FROM events e WHERE e.conversation_id = c.id "
    "AND e.kind IN ('review', 'reopen') AND e.detail::json->>'participant' IS NULL), "
    "'-infinity'::timestamptz)) AS waiting_since "
    "FROM conversations c WHERE c.ended AND ($1::text IS NULL OR c.platform = $1) "
    "AND ($3::text IS NULL OR c.community = $3) "
    # Only conversations someone gave feedback on can wait (see the SQLite store).
    "AND c.id IN (SELECT conversation_id FROM feedback)) AS q "
    "WHERE waiting_since IS NOT NULL ORDER BY waiting_since LIMIT $2"
)
QUALIFIED = codec.QUALIFIED_CONVERSATION_COLUMNS
# Disputed shut-outs (see the SQLite store).
DISPUTED_SHUT_OUTS = (
    f"SELECT * FROM (SELECT {QUALIFIED}, p.user_id AS shut_out_user, ("
    "SELECT MIN(f.at) FROM feedback f WHERE f.conversation_id = p.conversation_id "
    "AND f.user_id = p.user_id AND f.at >= p.shut_out_at AND f.at > COALESCE(("
    "SELECT MAX(e.at) FROM events e WHERE e.conversation_id = p.conversation_id "
    "AND e.kind = 'review' AND e.detail::json->>'participant' = p.user_id), "
    "'-infinity'::timestamptz)) AS waiting_since "
    "FROM participants p JOIN conversations c ON c.id = p.conversation_id "
    "WHERE p.shut_out AND ($1::text IS NULL OR c.platform = $1) "
    "AND ($3::text IS NULL OR c.community = $3) "
    "AND (p.conversation_id, p.user_id) IN (SELECT conversation_id, user_id FROM feedback)) "
    "AS q WHERE waiting_since IS NOT NULL ORDER BY waiting_since LIMIT $2"
)


# --- per-community settings ------------------------------------------------------------

COMMUNITY = "SELECT settings FROM communities WHERE platform = $1 AND community = $2"
SET_COMMUNITY = (
    "INSERT INTO communities (platform, community, settings, updated_at, updated_by) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (platform, community) DO UPDATE SET "
    "settings = excluded.settings, updated_at = excluded.updated_at, "
    "updated_by = excluded.updated_by"
)
COMMUNITIES = (
    "SELECT platform, community, settings, updated_at, updated_by FROM communities "
    "WHERE ($1::text IS NULL OR platform = $1) ORDER BY platform, community"
)
