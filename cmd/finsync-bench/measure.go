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
	Name      string  `json:"name"`
	Rows      int     `json:"rows"`
	Requests  int64   `json:"requests,omitempty"`
	Seconds   float64 `json:"seconds"`
	RowsPerS  float64 `json:"rows_per_s"`
	JSONMB    float64 `json:"json_mb,omitempty"` // provider JSON read
	JSONMBPS  float64 `json:"json_mb_per_s,omitempty"`
	CPUSecs   float64 `json:"cpu_seconds"`
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"` // this process's peak during the phase
	Note      string  `json:"note,omitempty"`
}

// measure times fn in this process: wall, CPU, and the peak RSS of the
// phase (VmHWM after a reset; a child process such as the sandbox is not
// counted).
func measure(name string, fn func() (rows int, jsonBytes int64, err error)) (result, error) {
	// Writing 5 to clear_refs resets VmHWM, so the peak is this phase's own.
	if f, err := os.OpenFile("/proc/self/clear_refs", os.O_WRONLY, 0); err == nil {
		f.WriteString("5")
		f.Close()
	}
	cpu0 := cpuSeconds(syscall.RUSAGE_SELF)
	start := time.Now()
	rows, n, err := fn()
	if err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(start).Seconds()
	r := result{Name: name, Rows: rows, Seconds: secs, RowsPerS: float64(rows) / secs,
		CPUSecs: cpuSeconds(syscall.RUSAGE_SELF) - cpu0, PeakRSSMB: procStatusMB("VmHWM:")}
	if n > 0 {
		r.JSONMB = float64(n) / 1e6
		r.JSONMBPS = r.JSONMB / secs
	}
	return r, nil
}

// measureChild times a child process (its CPU and peak RSS, not the
// server's).
func measureChild(name string, rows int, jsonBytes int64, cmd *exec.Cmd) (result, error) {
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	secs := time.Since(start).Seconds()
	r := result{Name: name, Rows: rows, Seconds: secs, RowsPerS: float64(rows) / secs,
		JSONMB: float64(jsonBytes) / 1e6, JSONMBPS: float64(jsonBytes) / 1e6 / secs}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.CPUSecs = tv(ru.Utime) + tv(ru.Stime)
		r.PeakRSSMB = float64(ru.Maxrss) / 1024
	}
	return r, nil
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
