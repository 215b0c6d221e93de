package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
)

// The provider runs in a process of its own, as a real one would: its
// memory is not finsync's, and its CPU shows as the child's. The bench
// starts itself with the argument "sandbox".

const (
	sandboxClient = "sandbox-client"
	sandboxSecret = "sandbox-secret"
)

// sandboxSize is what one sandbox process serves.
type sandboxSize struct {
	users, txPerUser, months int
	latency                  time.Duration // added to every request
	// syncedAt is every bank login's lastSynchronization: before the
	// first run, so a second run finds nothing new.
	syncedAt time.Time
}

// serveSandbox is the child: it serves the finoOS sandbox on a loopback
// port, prints the URL, the users, and "ready", and exits when its stdin
// closes (the parent is gone).
func serveSandbox(args []string) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	var sz sandboxSize
	var synced string
	fs.IntVar(&sz.users, "users", 10_000, "users")
	fs.IntVar(&sz.txPerUser, "tx", 100, "transactions per user")
	fs.IntVar(&sz.months, "months", 12, "months of data")
	fs.DurationVar(&sz.latency, "latency", 0, "latency added to every request")
	fs.StringVar(&synced, "synced", "", "lastSynchronization of every login (RFC 3339)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	today := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, -1)
	opts := finosb.Options{UsersPerTenant: sz.users, TransactionsPerUser: sz.txPerUser, Months: sz.months,
		Today: today, Seed: 1, Faults: sandboxkit.Knobs{Latency: sz.latency}}
	if synced != "" {
		t, err := time.Parse(time.RFC3339, synced)
		if err != nil {
			return err
		}
		opts.SyncedAt = func() time.Time { return t }
	}
	sb := finosb.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	w := bufio.NewWriter(os.Stdout)
	fmt.Fprintln(w, "http://"+ln.Addr().String())
	for _, u := range sb.Users(sandboxClient) {
		fmt.Fprintln(w, u)
	}
	fmt.Fprintln(w, "ready")
	w.Flush()
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	var served, requests atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+statsPath, func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(sandboxStats{Bytes: served.Load(), Requests: requests.Load(), CPUSecs: cpuSeconds(syscall.RUSAGE_SELF)})
	})
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		sb.ServeHTTP(&countingWriter{ResponseWriter: w, n: &served}, r)
	}))
	return http.Serve(ln, mux)
}

// statsPath is where the sandbox child tells what it served and spent.
const statsPath = "/bench/stats"

// sandboxStats are the sandbox's totals so far: response bytes and CPU.
type sandboxStats struct {
	Bytes    int64   `json:"bytes"`
	Requests int64   `json:"requests"`
	CPUSecs  float64 `json:"cpu_seconds"`
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	return n, err
}

// stats asks the sandbox child for its totals.
func (p *sandboxProc) stats() (sandboxStats, error) {
	var st sandboxStats
	resp, err := http.Get(p.url + statsPath)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// sandboxProc is a running sandbox child.
type sandboxProc struct {
	url   string
	users []string
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startSandbox(sz sandboxSize) (*sandboxProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"sandbox", "-users", strconv.Itoa(sz.users), "-tx", strconv.Itoa(sz.txPerUser),
		"-months", strconv.Itoa(sz.months), "-latency", sz.latency.String()}
	if !sz.syncedAt.IsZero() {
		args = append(args, "-synced", sz.syncedAt.UTC().Format(time.RFC3339))
	}
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &sandboxProc{cmd: cmd, stdin: stdin}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "ready":
			return p, nil
		case p.url == "":
			p.url = line
		default:
			p.users = append(p.users, line)
		}
	}
	p.close()
	return nil, fmt.Errorf("sandbox ended before it was ready: %v", sc.Err())
}

func (p *sandboxProc) close() {
	p.stdin.Close()
	p.cmd.Wait()
}
