//go:build linux

package main

import (
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	finosb "github.com/finsync/finsync/extract/fino/sandbox"
	"github.com/finsync/finsync/extract/sandboxkit"
	"github.com/finsync/finsync/load/clickhouse/chtest"
)

// In a terminal, a backfill's bar is redrawn in place and moves within a
// window; log lines go above it, each on a line of its own, never glued to
// the bar. The backfill runs in a pseudo-terminal and the test replays
// what it wrote as a terminal shows it.
func TestBackfillInATerminal(t *testing.T) {
	sb := finosb.New(finosb.Options{UsersPerTenant: 3, Months: 3, Seed: 4, Faults: sandboxkit.Knobs{Latency: 40 * time.Millisecond}})
	srv := httptest.NewServer(sb)
	defer srv.Close()
	defer sb.Close()
	opts := chtest.Options(t)
	t.Cleanup(func() { chtest.DropDatabase(t, opts) })
	master, tty := openPTY(t)
	defer master.Close()
	args := []string{"backfill", "-stream", "fino.transactions", "-tenant", "sandbox-client",
		"-from", "2026-01-01", "-to", "2026-01-28", "-window", "7d"}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "FINSYNC_TEST_ARGS="+strings.Join(args, " "),
		"FINSYNC_CLICKHOUSE_ADDR="+opts.Addr, "FINSYNC_CLICKHOUSE_DATABASE="+opts.Database, "FINSYNC_LOG_LEVEL=info",
		"FINSYNC_FINO_BASE_URL="+srv.URL, "FINSYNC_FINO_CLIENT_ID=sandbox-client", "FINSYNC_FINO_CLIENT_SECRET=sandbox-secret",
		"FINSYNC_FINO_USERS="+strings.Join(sb.Users("sandbox-client"), ","))
	child.Stdin, child.Stdout, child.Stderr = tty, tty, tty
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	written := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once the child's side is closed
		written <- b
	}()
	if err := child.Wait(); err != nil {
		t.Fatalf("backfill: %v\n%s", err, <-written)
	}
	raw := <-written
	screen := replay(raw)
	var logs, bars int
	for _, line := range screen {
		isBar := strings.Contains(line, " windows")
		isLog := strings.Contains(line, "msg=")
		switch {
		case isBar && isLog:
			t.Errorf("a log line glued to the bar: %q", line)
		case isLog:
			logs++
		case isBar:
			bars++
		}
	}
	if logs < 4 || bars != 1 {
		t.Errorf("%d log lines and %d bar lines on the screen, want a run's line per window and one bar:\n%s", logs, bars, strings.Join(screen, "\n"))
	}
	if last := screen[len(screen)-1]; !strings.Contains(last, "4/4 windows") || !strings.Contains(last, "rows/s") {
		t.Errorf("the last line is not the finished bar: %q", last)
	}
	if !strings.Contains(string(raw), "records read") {
		t.Errorf("the bar never moved within a window:\n%q", raw)
	}
}

// replay renders what a program wrote to a terminal: "\r" returns to the
// line's start, "\033[K" clears to its end, "\n" starts a new line, and
// anything else overwrites. It returns the screen's lines, the empty last
// one left out.
func replay(b []byte) []string {
	var lines [][]rune
	line, col := []rune{}, 0
	s := string(b)
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "\033[K"):
			line = line[:col]
			i += len("\033[K")
			continue
		case s[i] == '\r':
			col = 0
		case s[i] == '\n':
			lines = append(lines, line)
			line, col = []rune{}, 0
		default:
			r := []rune(s[i:])[0]
			if col < len(line) {
				line[col] = r
			} else {
				line = append(line, r)
			}
			col++
			i += len(string(r))
			continue
		}
		i++
	}
	if len(line) > 0 {
		lines = append(lines, line)
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = string(l)
	}
	return out
}

// openPTY opens a pseudo-terminal pair: what is written to tty is read
// from master.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatal(e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatal(e)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, tty
}
