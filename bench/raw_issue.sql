-- What one single-weapon issue (or return) does in the service, as bare SQL for pgbench: lock the
-- weapon's holding row, move the counters the accountability report reads (a weapon leaving a
-- depot's store leaves its freshness row; one arriving joins the row for now), insert the
-- movement and its line, update the holding, append the audit record under the chain head's
-- lock (as the audit_append function, migration 0013), commit. Client c drives its own
-- weapons of depot 1 + c % (depots - 1), as bench/load.py's wrk threads do over HTTP.
-- Variables from pgbench -D: depots, big (weapons in depot D00).
\set d 1 + :client_id % (:depots - 1)
\set k (:client_id / (:depots - 1)) * 100 + random(0, 99)
\set n :big + :d + :k * (:depots - 1)
BEGIN;
SELECT h.holder_id AS held, dep.id AS depot, u.id AS unit
FROM weapon_holdings h, holders dep, holders u
WHERE h.weapon_id = ('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid
  AND dep.kind = 'depot' AND dep.code = 'D' || lpad(:d::text, 2, '0')
  AND u.kind = 'unit' AND u.code = 'U' || lpad(:d::text, 2, '0')
FOR UPDATE OF h \gset
\if :held = :depot
\set source :depot
\set dest :unit
\else
\set source :unit
\set dest :depot
\endif
INSERT INTO holder_weapon_counts (holder_id, lost, weapons)
VALUES (:source, false, -1), (:dest, false, 1)
ON CONFLICT (holder_id, lost) DO UPDATE SET weapons = holder_weapon_counts.weapons + excluded.weapons;
\if :held = :depot
UPDATE in_store_freshness SET weapons = weapons - 1
WHERE holder_id = :depot AND fresh_since = (
    SELECT CASE WHEN v.verified_at > m.recorded_at THEN v.verified_at ELSE m.recorded_at END
    FROM weapon_holdings h JOIN movements m ON m.seq = h.movement_seq
    LEFT JOIN weapon_verifications v ON v.weapon_id = h.weapon_id
    WHERE h.weapon_id = ('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid);
\else
INSERT INTO in_store_freshness (holder_id, fresh_since, weapons) VALUES (:depot, now(), 1)
ON CONFLICT (holder_id, fresh_since) DO UPDATE SET weapons = in_store_freshness.weapons + 1;
\endif
INSERT INTO movements (id, kind, from_holder_id, to_holder_id, occurred_at, recorded_at, actor,
    document_ref, due_back_at, late_entry)
VALUES (gen_random_uuid(), CASE WHEN :dest = :unit THEN 'issue' ELSE 'return' END, :source,
    :dest, now(), now(), 'bench', 'RAW', now() + interval '7 days', false)
RETURNING seq \gset
INSERT INTO movement_lines (movement_seq, line_no, weapon_id, quantity, registers)
VALUES (:seq, 0, ('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid, 1, false);
UPDATE weapon_holdings SET holder_id = :dest, movement_seq = :seq
WHERE weapon_id = ('00000000-0000-4000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid;
WITH previous AS (
    SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE
), advanced AS (
    UPDATE audit_head AS head
    SET seq = previous.seq + 1,
        hash = encode(sha256(decode(previous.hash, 'hex')
            || decode('73746f636b70696c652d61756469742f310a7b22616374696f6e223a226d6f76656d656e742e6973737565222c226163746f72223a2262656e6368222c226368616e676573223a7b226c696e6573223a317d2c227265636f726465645f6174223a22323032362d30312d30315430303a30303a30302e3030303030302b30303a3030222c22726571756573745f6964223a22726177222c22726f6c65223a2261646d696e222c22736571223a', 'hex')
            || convert_to(CAST(previous.seq + 1 AS text), 'UTF8')
            || decode('2c227375626a656374223a226d6f76656d656e742d726177227d', 'hex')), 'hex')
    FROM previous
    WHERE head.id = 1
    RETURNING head.seq, head.hash, previous.hash AS prev_hash
)
INSERT INTO audit_records
    (seq, recorded_at, actor, role, action, subject, request_id, body, prev_hash, hash)
SELECT seq, make_timestamptz(2026, 1, 1, 0, 0, 0, 'UTC'), 'bench', 'admin', 'movement.issue',
    'movement-raw', 'raw',
    decode('73746f636b70696c652d61756469742f310a7b22616374696f6e223a226d6f76656d656e742e6973737565222c226163746f72223a2262656e6368222c226368616e676573223a7b226c696e6573223a317d2c227265636f726465645f6174223a22323032362d30312d30315430303a30303a30302e3030303030302b30303a3030222c22726571756573745f6964223a22726177222c22726f6c65223a2261646d696e222c22736571223a', 'hex')
    || convert_to(CAST(seq AS text), 'UTF8')
    || decode('2c227375626a656374223a226d6f76656d656e742d726177227d', 'hex'),
    prev_hash, hash
FROM advanced;
END;
