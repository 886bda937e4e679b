// tlogverify checks what our transparency log serves with an implementation nobody here wrote:
// Go's golang.org/x/mod/sumdb/note (C2SP signed notes) and golang.org/x/mod/sumdb/tlog (RFC 6962 /
// RFC 9162 Merkle proofs), as Debian packages them (golang-golang-x-mod-dev).
//
// It reads one JSON object on stdin: the log's note verifier key, a checkpoint note, optionally
// an older checkpoint note with the consistency path to the newer one, and records with their
// canonical bytes and inclusion paths. It prints "ok" and exits 0 if everything verifies, or
// prints what failed and exits 1.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type record struct {
	LeafIndex int64    `json:"leaf_index"`
	LeafInput string   `json:"leaf_input"`
	Path      []string `json:"inclusion_path"`
}

type input struct {
	VKey            string   `json:"vkey"`
	Note            string   `json:"note"`
	OldNote         string   `json:"old_note"`
	ConsistencyPath []string `json:"consistency_path"`
	Records         []record `json:"records"`
}

type head struct {
	origin string
	size   int64
	root   tlog.Hash
}

func fail(format string, args ...interface{}) {
	fmt.Printf(format+"\n", args...)
	os.Exit(1)
}

func open(text string, verifiers note.Verifiers) head {
	n, err := note.Open([]byte(text), verifiers)
	if err != nil {
		fail("note does not verify: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 {
		fail("checkpoint body has %d lines", len(lines))
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil {
		fail("tree size: %v", err)
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		fail("root hash: %v", err)
	}
	return head{lines[0], size, root}
}

func hashes(values []string) []tlog.Hash {
	out := make([]tlog.Hash, len(values))
	for i, v := range values {
		h, err := tlog.ParseHash(v)
		if err != nil {
			fail("hash %d: %v", i, err)
		}
		out[i] = h
	}
	return out
}

func main() {
	var in input
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		fail("input: %v", err)
	}
	verifier, err := note.NewVerifier(in.VKey)
	if err != nil {
		fail("verifier key: %v", err)
	}
	verifiers := note.VerifierList(verifier)
	latest := open(in.Note, verifiers)
	if latest.origin != verifier.Name() {
		fail("origin %q is not the key name %q", latest.origin, verifier.Name())
	}
	if in.OldNote != "" {
		old := open(in.OldNote, verifiers)
		proof := tlog.TreeProof(hashes(in.ConsistencyPath))
		if err := tlog.CheckTree(proof, latest.size, latest.root, old.size, old.root); err != nil {
			fail("consistency %d -> %d: %v", old.size, latest.size, err)
		}
	}
	for _, r := range in.Records {
		data, err := base64.StdEncoding.DecodeString(r.LeafInput)
		if err != nil {
			fail("leaf_input %d: %v", r.LeafIndex, err)
		}
		proof := tlog.RecordProof(hashes(r.Path))
		leaf := tlog.RecordHash(data)
		if err := tlog.CheckRecord(proof, latest.size, latest.root, r.LeafIndex, leaf); err != nil {
			fail("inclusion of leaf %d in %d: %v", r.LeafIndex, latest.size, err)
		}
	}
	fmt.Println("ok")
}
