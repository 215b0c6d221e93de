package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// result is one measured phase.
type result struct {
	Name     string  `json:"name"`
	Rows     int     `json:"rows"`
	Requests int64   `json:"requests,omitempty"`
	Seconds  float64 `json:"seconds"`
	RowsPerS float64 `json:"rows_per_s"`
	JSONMB   float64 `json:"json_mb,omitempty"` // provider JSON read
	JSONMBPS float64 `json:"json_mb_per_s,omitempty"`
	CPUSecs  float64 `json:"cpu_seconds"`
	// ServerCPUSecs is the local ClickHouse server's CPU in the phase
	// (read from /proc; 0 when the server is not the local one).
	ServerCPUSecs float64 `json:"server_cpu_seconds,omitempty"`
	PeakRSSMB     float64 `json:"peak_rss_mb,omitempty"` // this process's peak during the phase
	Note          string  `json:"note,omitempty"`
}

// measure times fn in this process: wall, CPU, and the peak RSS of the
// phase (VmHWM after a reset; a child process such as the sandbox is not
// counted).
func measure(name string, server serverCPU, fn func() (rows int, jsonBytes int64, err error)) (result, error) {
	// Writing 5 to clear_refs resets VmHWM, so the peak is this phase's own.
	if f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0); err == nil {
		f.WriteString("5")
		f.Close()
	}
	cpu0, srv0 := cpuSeconds(syscall.RUSAGE_SELF), server()
	start := time.Now()
	rows, n, err := fn()
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(start).Seconds()
	r := result{Name: name, Rows: rows, Seconds: secs, RowsPerS: float64(rows) / secs,
		CPUSecs: cpuSeconds(syscall.RUSAGE_SELF) - cpu0, ServerCPUSecs: server() - srv0, PeakRSSMB: procStatusMB("VmHWM:")}
	if n > 0 {
		r.JSONMB = float64(n) / 1e6
		r.JSONMBPS = r.JSONMB / secs
	}
	return r, nil
}

// measureChild times a child process: wall, its CPU, and its peak RSS,
// polled from /proc/<pid>/status (VmHWM). The kernel's own figure for a
// child (ru_maxrss) starts from the parent's size at fork, so it would
// charge the bench's memory to finsync.
func measureChild(name string, server serverCPU, rows int, jsonBytes int64, cmd *exec.Cmd) (result, error) {
	srv0 := server()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	var peak float64
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	for waiting := true; waiting; {
		select {
		case err = <-done:
			waiting = false
		case <-time.After(20 * time.Millisecond):
			if b, rerr := os.ReadFile(status); rerr == nil {
				peak = max(peak, statusMB(b, "VmHWM:"))
			}
		}
	}
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(start).Seconds()
	r := result{Name: name, Rows: rows, Seconds: secs, RowsPerS: float64(rows) / secs, PeakRSSMB: peak,
		JSONMB: float64(jsonBytes) / 1e6, JSONMBPS: float64(jsonBytes) / 1e6 / secs, ServerCPUSecs: server() - srv0}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPUSecs = tv(ru.Utime) + tv(ru.Stime)
	}
	return r, nil
}

// serverCPU returns a process's CPU seconds so far.
type serverCPU func() float64

// processCPU reads the CPU seconds of the process whose pid is in
// pidfile, from /proc/<pid>/stat (utime and stime, in clock ticks of
// 1/100 s on Linux); 0 when it cannot.
func processCPU(pidfile string) serverCPU {
	return func() float64 {
		pid, err := os.ReadFile(pidfile)
		if err != nil {
			return 0
		}
		stat, err := os.ReadFile("/proc/" + strings.TrimSpace(string(pid)) + "/stat")
		if err != nil {
			return 0
		}
		// Fields after the command name (which may hold spaces, in parens).
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) < 13 {
			return 0
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		return (ut + st) / 100
	}
}

func cpuSeconds(who int) float64 {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// procStatusMB reads one memory line (VmHWM:, VmRSS:) of /proc/self/status.
func procStatusMB(key string) float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	return statusMB(b, key)
}

// statusMB reads one memory line of a /proc/<pid>/status, in MB.
func statusMB(b []byte, key string) float64 {
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
