package chtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Engine runs SQL text and answers in a ClickHouse output format: the
// server of the tests over HTTP, or the modern engine in-process.
type Engine interface {
	// Query runs one statement with database as the current database and
	// returns its output in format ("" for statements without a result).
	Query(database, sql, format string) (string, error)
	// Name says which engine, e.g. "ClickHouse 18.16.1 (server)".
	Name() string
}

// Modern starts chDB, the ClickHouse engine of a current release (26.7)
// in-process, installed by deploy/clickhouse/chdb.sh (cached after the
// first run) and driven through a Node.js process
// (deploy/clickhouse/chdb/serve.js). Its data lives in a temporary folder.
// There is no native TCP port: statements go in as text.
//
// Without node the test fails, naming what to install; with
// FINSYNC_MODERN_CHECK=skip it is skipped instead.
func Modern(t testing.TB) Engine {
	t.Helper()
	if os.Getenv("FINSYNC_MODERN_CHECK") == "skip" {
		t.Skip("FINSYNC_MODERN_CHECK=skip: the statements are not checked on a modern ClickHouse")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	install := exec.Command(filepath.Join(root, "deploy/clickhouse/chdb.sh"), "install")
	var stderr bytes.Buffer
	install.Stderr = &stderr
	home, err := install.Output()
	if err != nil {
		t.Fatalf("installing chDB (deploy/clickhouse/chdb.sh install; needs node and npm, or set FINSYNC_MODERN_CHECK=skip): %v\n%s", err, stderr.String())
	}
	cmd := exec.Command("node", filepath.Join(root, "deploy/clickhouse/chdb/serve.js"), t.TempDir())
	cmd.Env = append(os.Environ(), "NODE_PATH="+filepath.Join(strings.TrimSpace(string(home)), "node_modules"))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting chDB: %v", err)
	}
	m := &modern{in: in, answers: make(chan []byte), stop: func() { cmd.Process.Kill() }}
	go func() {
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				close(m.answers)
				return
			}
			m.answers <- line
		}
	}()
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	// Output only: the same text forms as 18.16 prints (64-bit integers
	// quoted in JSON, decimals with their trailing zeros), so that answers
	// compare as text. Neither changes what a query computes.
	for _, set := range []string{"SET output_format_json_quote_64bit_integers = 1", "SET output_format_decimal_trailing_zeros = 1"} {
		if _, err := m.Query("", set, ""); err != nil {
			t.Fatalf("chDB: %s: %v", set, err)
		}
	}
	v, err := m.Query("", "SELECT version()", "TabSeparated")
	if err != nil {
		t.Fatalf("chDB: %v", err)
	}
	m.version = strings.TrimSpace(v)
	return m
}

type modern struct {
	mu      sync.Mutex
	in      io.Writer
	answers chan []byte // serve.js's output lines
	stop    func()      // kills serve.js
	broken  error       // set when a statement hung: the session is gone
	version string
	current string // the session's current database
}

// queryTimeout bounds one statement: a statement that waits for something
// that never comes (a merge while merges are stopped) fails the test
// instead of hanging it.
const queryTimeout = 2 * time.Minute

func (m *modern) Name() string { return "ClickHouse " + m.version + " (chDB)" }

func (m *modern) Query(database, sql, format string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if database != "" && database != m.current {
		if _, err := m.send("USE "+quoteIdent(database), ""); err != nil {
			return "", err
		}
		m.current = database
	}
	return m.send(sql, format)
}

func (m *modern) send(sql, format string) (string, error) {
	if m.broken != nil {
		return "", m.broken
	}
	req, _ := json.Marshal(map[string]string{"sql": sql, "format": format})
	if _, err := m.in.Write(append(req, '\n')); err != nil {
		return "", fmt.Errorf("chDB is gone: %w", err)
	}
	var line []byte
	select {
	case l, ok := <-m.answers:
		if !ok {
			return "", errors.New("chDB is gone (see its output above)")
		}
		line = l
	case <-time.After(queryTimeout):
		m.stop()
		m.broken = fmt.Errorf("chDB stopped: a statement had no answer in %v: %s", queryTimeout, sql)
		return "", m.broken
	}
	var answer struct{ Out, Error *string }
	if err := json.Unmarshal(line, &answer); err != nil {
		return "", fmt.Errorf("chDB answered %q: %w", line, err)
	}
	if answer.Error != nil {
		return "", errors.New(*answer.Error)
	}
	if answer.Out == nil {
		return "", nil
	}
	return *answer.Out, nil
}

// Server is the tests' ClickHouse server over its HTTP interface
// (FINSYNC_CLICKHOUSE_HTTP_ADDR, default the local server's
// 127.0.0.1:18123): text in, text out, as the modern engine takes it.
func Server(t testing.TB) Engine {
	addr := os.Getenv("FINSYNC_CLICKHOUSE_HTTP_ADDR")
	if addr == "" {
		addr = "127.0.0.1:18123"
	}
	s := &server{base: "http://" + addr + "/"}
	v, err := s.Query("", "SELECT version()", "TabSeparated")
	if err != nil {
		t.Fatalf("ClickHouse over HTTP at %s: %v", addr, err)
	}
	s.version = strings.TrimSpace(v)
	return s
}

type server struct{ base, version string }

func (s *server) Name() string { return "ClickHouse " + s.version + " (server)" }

func (s *server) Query(database, sql, format string) (string, error) {
	q := url.Values{}
	if database != "" {
		q.Set("database", database)
	}
	if format != "" {
		q.Set("default_format", format)
	}
	resp, err := http.Post(s.base+"?"+q.Encode(), "text/plain", strings.NewReader(sql))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", errors.New(strings.TrimSpace(string(body)))
	}
	return string(body), nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// repoRoot is the folder holding go.mod, above the test's directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
