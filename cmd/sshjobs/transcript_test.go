package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sshjobs/sshjobs/internal/sshtest"
)

// Golden transcripts of tool answers, in the style of go-sdk's conformance
// tests (mcp/testdata/conformance): each scenario is a txtar archive under
// testdata/transcripts. Its comment says what the scenario shows; its
// "N call" files are the input, one step each:
//
//	tool {"json":"arguments"}   a tools/call; ALIAS stands for the test
//	                            server's ssh_config alias, JOB1, JOB2… for
//	                            the job ids in order of appearance
//	restart                     close the app (the engine ends running shell
//	                            jobs lost) and open a new one on the same
//	                            database, as a restarted server would
//
// After each call come its answers, written by the test: "N text" is the
// TextContent the model reads (with "(isError)" when the result is a tool
// error; one newline is added, so a text that ends with a newline is
// followed by an empty line) and "N structured" is the structured content.
// Ids, times, durations, hosts, ports and temp paths are normalised (see
// normaliser), so the files are the same on every machine and both kinds of
// test server. An optional "servers" file lists the server kinds the
// scenario runs on (default: inprocess); openssh runs only where sshd is
// installed, and never writes the files.
//
// The structured content is the client's decoded JSON, indented, keys
// sorted.
//
// The answers must not depend on timing. A scenario that needs a job
// running makes a first call that opens the session (a new shell takes
// seconds), then hands back with timeout_s 1 a command that prints nothing
// for 2 s or more; ssh_job with offset and wait_s waits for output, and
// with wait_s alone for the end.
//
// Run with -update to rewrite the answers; review the diff:
//
//	go test ./cmd/sshjobs -run TestTranscripts -update

const transcriptDir = "testdata/transcripts"

func TestTranscripts(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(transcriptDir, "*.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatalf("no transcripts in %s", transcriptDir)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			ar := parseTxtar(data)
			sc, err := loadScenario(ar)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			for _, kind := range sc.servers {
				t.Run(string(kind), func(t *testing.T) {
					var srv *sshtest.Server
					switch kind {
					case sshtest.KindInProcess:
						srv = sshtest.StartInProcess(t, sshtest.Options{})
					case sshtest.KindOpenSSH:
						if !sshtest.HaveOpenSSH() {
							t.Skip("sshd is not installed")
						}
						srv = sshtest.StartOpenSSH(t, sshtest.Options{})
					}
					got := txtarFormat(runScenario(t, sc, srv))
					if *update && kind == sshtest.KindInProcess {
						if err := os.WriteFile(path, got, 0o644); err != nil {
							t.Fatal(err)
						}
						data = got
						return
					}
					if !bytes.Equal(got, data) {
						t.Errorf("%s: the answers changed (-want +got):\n%s\nIf intended, run go test ./cmd/sshjobs -run TestTranscripts -update and review the diff.",
							path, lineDiff(string(data), string(got)))
					}
				})
			}
		})
	}
}

// scenario is a transcript's input.
type scenario struct {
	comment string
	servers []sshtest.Kind
	keep    []txtarFile // the input files, in order: "servers" and the calls
}

func loadScenario(ar *txtarArchive) (*scenario, error) {
	sc := &scenario{comment: ar.comment}
	n := 0
	for _, f := range ar.files {
		switch {
		case f.name == "servers":
			for _, k := range strings.Fields(f.data) {
				if k != string(sshtest.KindInProcess) && k != string(sshtest.KindOpenSSH) {
					return nil, fmt.Errorf("servers: unknown kind %q", k)
				}
				sc.servers = append(sc.servers, sshtest.Kind(k))
			}
			sc.keep = append(sc.keep, f)
		case strings.HasSuffix(f.name, " call"):
			n++
			if f.name != strconv.Itoa(n)+" call" {
				return nil, fmt.Errorf("file %q: want %q", f.name, strconv.Itoa(n)+" call")
			}
			sc.keep = append(sc.keep, f)
		}
	}
	if n == 0 {
		return nil, fmt.Errorf("no calls")
	}
	if len(sc.servers) == 0 {
		sc.servers = []sshtest.Kind{sshtest.KindInProcess}
	}
	// The in-process server writes the files with -update: it runs first.
	sort.SliceStable(sc.servers, func(i, j int) bool {
		return sc.servers[i] == sshtest.KindInProcess && sc.servers[j] != sshtest.KindInProcess
	})
	return sc, nil
}

// runScenario makes the calls of sc against srv and returns the transcript.
func runScenario(t *testing.T, sc *scenario, srv *sshtest.Server) *txtarArchive {
	dir := t.TempDir()
	cfg := testConfig(t, srv, dir)
	c := newMCPClient(t, cfg)
	norm := newNormaliser(srv, dir)
	out := &txtarArchive{comment: sc.comment}
	for _, f := range sc.keep {
		out.files = append(out.files, f)
		if f.name == "servers" {
			continue
		}
		step := strings.TrimSuffix(f.name, " call")
		line := strings.TrimSpace(f.data)
		if line == "restart" {
			c.a.Close()
			c = newMCPClient(t, cfg)
			continue
		}
		tool, args, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("%s call: want `tool {json}` or `restart`, got %q", step, line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(norm.expand(args)), &m); err != nil {
			t.Fatalf("%s call: arguments: %v", step, err)
		}
		res := c.call(tool, m)
		name := step + " text"
		if res.IsError {
			name += " (isError)"
		}
		out.files = append(out.files, txtarFile{name: name, data: norm.apply(text(res)) + "\n"})
		if res.StructuredContent != nil {
			b, err := json.MarshalIndent(res.StructuredContent, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			out.files = append(out.files, txtarFile{name: step + " structured", data: norm.apply(string(b)) + "\n"})
		}
		for _, ct := range res.Content {
			if _, ok := ct.(*mcp.TextContent); !ok {
				t.Errorf("%s: content of type %T", step, ct)
			}
		}
	}
	return out
}

// normaliser makes answers independent of the run: job ids become JOB1,
// JOB2… in order of appearance, times TIME, durations DURATION, the host
// key (user@127.0.0.1:port#hash) USER@HOST, and the test's folders TMP.
type normaliser struct {
	ids      map[string]string // real id -> JOBn
	real     map[string]string // JOBn -> real id
	literals *strings.Replacer
	alias    string
}

var (
	reJobID    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	reTime     = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
	reHost     = regexp.MustCompile(`[A-Za-z0-9._-]+@127\.0\.0\.1:\d+(#[0-9a-f]{8})?`)
	reAddr     = regexp.MustCompile(`127\.0\.0\.1:\d+`)
	reStateDur = regexp.MustCompile(`^(job \S+ \S+ .*session=\S+) (\d[0-9.hmsµn]*s)\b`)
	reDurMS    = regexp.MustCompile(`"duration_ms": [1-9]\d*`)
	// A job that ran (it has an exit code) may end within the millisecond it
	// started in (a fast pwd, seen once in a suite run): its 0 ms duration
	// is no less a duration. A job that never ran keeps its 0.
	reDurZeroRan = regexp.MustCompile(`"duration_ms": 0,((?:\n[^{}\n]*)*?\n\s*"exit_code": -?\d+)`)
	reSessionEnd = regexp.MustCompile(`^(job \S+ \S+ exit=.*?session=\S+)`)
	rePlace      = regexp.MustCompile(`\bJOB\d+\b`)
)

func newNormaliser(srv *sshtest.Server, dirs ...string) *normaliser {
	var pairs []string
	for _, d := range append(dirs, srv.Dir) {
		if len(d) > 1 {
			pairs = append(pairs, d, "TMP")
		}
	}
	// The shell starts in the login user's home: from the password
	// database, which may differ from this process's $HOME.
	homes := []string{}
	if u, err := user.Current(); err == nil {
		homes = append(homes, u.HomeDir)
	}
	if h, err := os.UserHomeDir(); err == nil {
		homes = append(homes, h)
	}
	for _, h := range homes {
		if len(h) > 1 {
			pairs = append(pairs, h, "HOME")
		}
	}
	return &normaliser{ids: map[string]string{}, real: map[string]string{},
		literals: strings.NewReplacer(pairs...), alias: srv.Alias}
}

// expand puts the real alias and job ids into a call's arguments.
func (n *normaliser) expand(args string) string {
	args = strings.ReplaceAll(args, "ALIAS", n.alias)
	return rePlace.ReplaceAllStringFunc(args, func(p string) string {
		if id, ok := n.real[p]; ok {
			return id
		}
		return p // not seen yet: the call fails as it would with a bad id
	})
}

func (n *normaliser) apply(s string) string {
	s = reJobID.ReplaceAllStringFunc(s, func(id string) string {
		p, ok := n.ids[id]
		if !ok {
			p = "JOB" + strconv.Itoa(len(n.ids)+1)
			n.ids[id], n.real[p] = p, id
		}
		return p
	})
	s = reTime.ReplaceAllString(s, "TIME")
	s = reHost.ReplaceAllString(s, "USER@HOST")
	s = reAddr.ReplaceAllString(s, "HOST")
	s = strings.ReplaceAll(s, n.alias, "ALIAS")
	s = n.literals.Replace(s)
	s = reDurMS.ReplaceAllString(s, `"duration_ms": "DURATION"`)
	s = reDurZeroRan.ReplaceAllString(s, `"duration_ms": "DURATION",$1`)
	first, rest, found := strings.Cut(s, "\n")
	first = reStateDur.ReplaceAllString(first, "$1 DURATION")
	if !strings.Contains(first, " DURATION") {
		first = reSessionEnd.ReplaceAllString(first, "$1 DURATION")
	}
	if found {
		return first + "\n" + rest
	}
	return first
}

// A tiny txtar (golang.org/x/tools/txtar) reader and writer, to keep that
// module out of go.mod: a comment, then files that each start with a line
// "-- name --".

type txtarArchive struct {
	comment string
	files   []txtarFile
}

type txtarFile struct {
	name, data string
}

func txtarMarker(line string) (string, bool) {
	line = strings.TrimSuffix(line, "\n")
	if !strings.HasPrefix(line, "-- ") || !strings.HasSuffix(line, " --") || len(line) < 6 {
		return "", false
	}
	return strings.TrimSpace(line[3 : len(line)-3]), true
}

func parseTxtar(data []byte) *txtarArchive {
	ar := &txtarArchive{}
	var cur *txtarFile
	var b strings.Builder
	flush := func() {
		if cur == nil {
			ar.comment = b.String()
		} else {
			cur.data = b.String()
			ar.files = append(ar.files, *cur)
		}
		b.Reset()
	}
	for _, line := range strings.SplitAfter(string(data), "\n") {
		if name, ok := txtarMarker(line); ok {
			flush()
			cur = &txtarFile{name: name}
			continue
		}
		b.WriteString(line)
	}
	flush()
	return ar
}

func txtarFormat(ar *txtarArchive) []byte {
	var b bytes.Buffer
	b.WriteString(fixNL(ar.comment))
	for _, f := range ar.files {
		fmt.Fprintf(&b, "-- %s --\n", f.name)
		b.WriteString(fixNL(f.data))
	}
	return b.Bytes()
}

func fixNL(s string) string {
	if s == "" || strings.HasSuffix(s, "\n") {
		return s
	}
	return s + "\n"
}

// lineDiff is a unified-style line diff of want and got (longest common
// subsequence), with two lines of context around each change.
func lineDiff(want, got string) string {
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	// lcs[i][j]: length of the LCS of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte
		line string
	}
	var ops []op
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, op{' ', a[i]})
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i]})
			i++
		default:
			ops = append(ops, op{'+', b[j]})
			j++
		}
	}
	const context = 2
	show := make([]bool, len(ops))
	for k, o := range ops {
		if o.kind != ' ' {
			for c := max(0, k-context); c <= min(len(ops)-1, k+context); c++ {
				show[c] = true
			}
		}
	}
	var out strings.Builder
	for k, o := range ops {
		if !show[k] {
			continue
		}
		if k > 0 && !show[k-1] && out.Len() > 0 {
			out.WriteString("...\n")
		}
		fmt.Fprintf(&out, "%c %s\n", o.kind, o.line)
	}
	return out.String()
}

// A job that ran within one millisecond (0 ms, no duration in its state
// line) reads like any other that ran; one that never ran keeps its 0.
func TestNormaliserZeroDuration(t *testing.T) {
	n := &normaliser{ids: map[string]string{}, real: map[string]string{}, literals: strings.NewReplacer(), alias: "sshtest-x"}
	for _, c := range []struct{ in, want string }{
		{"job j succeeded exit=0 host=h session=default cwd=/tmp\n/tmp\n", "job j succeeded exit=0 host=h session=default DURATION cwd=/tmp\n/tmp\n"},
		{"job j succeeded exit=0 host=h session=default 3ms cwd=/tmp", "job j succeeded exit=0 host=h session=default DURATION cwd=/tmp"},
		{"job j queued host=h session=default queue_position=1", "job j queued host=h session=default queue_position=1"},
		{"{\n  \"cwd\": \"/tmp\",\n  \"duration_ms\": 0,\n  \"ended_at\": \"x\",\n  \"exit_code\": 0,\n}", "{\n  \"cwd\": \"/tmp\",\n  \"duration_ms\": \"DURATION\",\n  \"ended_at\": \"x\",\n  \"exit_code\": 0,\n}"},
		{"{\n  \"duration_ms\": 0,\n  \"exit_code\": null,\n}", "{\n  \"duration_ms\": 0,\n  \"exit_code\": null,\n}"},
	} {
		if got := n.apply(c.in); got != c.want {
			t.Errorf("apply(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
