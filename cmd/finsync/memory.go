package main

import (
	"fmt"

	"github.com/finsync/finsync/extract"
)

// What finsync holds is set by configuration, never by what a provider
// sends: the element walker keeps at most FINSYNC_MAX_RECORD_BYTES of an
// element (extract.Limits), builders hand their rows on by bytes, the
// loader keeps what it retries in bytes. FINSYNC_MEMORY_BUDGET is the
// process's Go memory limit (debug.SetMemoryLimit), and checkMemory
// refuses settings whose worst case does not fit in it:
//
//	base + runs × (loader + workers × record limit × amplification)
//
// runs is the schedules' concurrency.global (runs in flight), workers the
// most subjects one run reads at once (FINSYNC_FINO_CONCURRENCY), loader a
// run's INSERT buffers (clickhouse.LoaderOptions.Memory) plus the records
// its workers build.
const (
	// memoryBase is the process without any run: runtime, code, HTTP
	// servers, connection pools.
	memoryBase = 64 << 20
	// amplification is how many bytes one byte of an element in flight
	// may hold at once: the walker's buffer (up to twice the element), the
	// element's copy, its decoded fields, its scrubbed raw and the Arrow
	// columns it becomes (raw, purpose, description). Measured on a
	// 1 MiB element: see DEVELOPING.md, Memory.
	amplification = 12
	// workerRecords is what a run's workers build before handing rows on
	// (extract/fino workerBytes, extract/fimento recordBytes).
	workerRecords = 8 << 20
)

// limits are the element limits the providers' clients stream within.
func (c Config) limits() extract.Limits {
	return extract.Limits{Record: int64(c.Memory.Record), Field: int64(c.Memory.Field), Elements: c.Memory.Elements}
}

// memoryNeeded is the worst case of the settings (see above) and how it
// adds up.
func (c Config) memoryNeeded() (int64, string) {
	runs := max(c.sched.Global, 1)
	workers := max(c.Fino.Concurrency, 1)
	loader := c.loaderOptions(nil).Memory() + workerRecords
	elements := int64(workers) * int64(c.Memory.Record) * amplification
	need := memoryBase + int64(runs)*(loader+elements)
	how := fmt.Sprintf("%s base + %d runs (concurrency.global) × (%s loader + %d workers (FINSYNC_FINO_CONCURRENCY) × %s records (FINSYNC_MAX_RECORD_BYTES) × %d)",
		extract.Bytes(memoryBase), runs, extract.Bytes(loader), workers, extract.Bytes(int64(c.Memory.Record)), amplification)
	return need, how
}

// checkMemory reports limits that make no sense together and settings
// whose worst case does not fit FINSYNC_MEMORY_BUDGET.
func (c Config) checkMemory() []error {
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	m := c.Memory
	if m.Field < 1<<10 {
		bad("FINSYNC_MAX_FIELD_BYTES=%d: want at least 1KiB", m.Field)
	}
	if m.Record < m.Field {
		bad("FINSYNC_MAX_RECORD_BYTES=%s: want at least FINSYNC_MAX_FIELD_BYTES (%s)", m.Record, m.Field)
	}
	if m.Elements < 1000 {
		bad("FINSYNC_MAX_PAGE_ELEMENTS=%d: want at least 1000 (finoOS pages hold up to 1,000)", m.Elements)
	}
	if c.sched != nil && c.sched.Global == 0 {
		bad("FINSYNC_MEMORY_BUDGET: the schedules' concurrency.global is unlimited, so no budget can hold: set it (%s)", c.sched.File)
	}
	if len(problems) > 0 || c.sched == nil {
		return problems
	}
	if need, how := c.memoryNeeded(); need > int64(m.Budget) {
		bad("FINSYNC_MEMORY_BUDGET=%s: these settings may need %s: %s; raise the budget or lower one of them", m.Budget, extract.Bytes(need), how)
	}
	return problems
}
