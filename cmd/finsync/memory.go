package main

import (
	"fmt"

	"github.com/finsync/finsync/extract"
)

// What finsync holds is set by configuration, never by what a provider
// sends: the element walker keeps at most FINSYNC_MAX_RECORD_BYTES of an
// element (extract.Limits), an answer read whole is held within
// FINSYNC_MAX_DOCUMENT_BYTES and, past its first 256 KiB, only with one of
// the process's wholeSlots (extract.Gate), builders hand their rows on by
// bytes, the loader keeps what it retries in bytes. FINSYNC_MEMORY_BUDGET
// is the process's Go memory limit (debug.SetMemoryLimit), and
// checkMemory refuses settings whose worst case does not fit in it:
//
//	base + slots × document limit × documentAmplification
//	     + runs × (loader + workers × max(record limit × amplification, 256 KiB × documentAmplification))
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
	// documentAmplification is the same for an answer held whole: its
	// bytes (twice while the buffer grows, once where the server sends
	// Content-Length), what it decodes into, the builders' rows and the
	// raw kept of each. Measured: see DEVELOPING.md, Memory.
	documentAmplification = 6
	// wholeSlots is how many answers past their first 256 KiB the process
	// holds at once (extract.Gate): the large ones (finAPI result pages,
	// FinGoal's batches) are few and read one after another within a run.
	wholeSlots = 2
	// workerRecords is what a run's workers build before handing rows on
	// (extract/fino workerBytes, extract/fimento recordBytes).
	workerRecords = 8 << 20
)

// limits are the limits the providers' clients read within, with the
// process's one Gate: call it once per process.
func (c Config) limits() extract.Limits {
	return extract.Limits{Record: int64(c.Memory.Record), Field: int64(c.Memory.Field), Elements: c.Memory.Elements,
		Document: int64(c.Memory.Document), Whole: extract.NewGate(wholeSlots)}
}

// memoryNeeded is the worst case of the settings (see above) and how it
// adds up.
func (c Config) memoryNeeded() (int64, string) {
	runs := max(c.sched.Global, 1)
	workers := max(c.Fino.Concurrency, 1)
	loader := c.loaderOptions(nil).Memory() + workerRecords
	worker, perWorker := int64(c.Memory.Record)*amplification,
		fmt.Sprintf("%s records (FINSYNC_MAX_RECORD_BYTES) × %d", extract.Bytes(int64(c.Memory.Record)), amplification)
	if held := int64(extract.HeldFree) * documentAmplification; held > worker {
		worker, perWorker = held, fmt.Sprintf("%s of an answer × %d", extract.Bytes(extract.HeldFree), documentAmplification)
	}
	documents := wholeSlots * int64(c.Memory.Document) * documentAmplification
	need := memoryBase + documents + int64(runs)*(loader+int64(workers)*worker)
	how := fmt.Sprintf("%s base + %d answers held whole × %s (FINSYNC_MAX_DOCUMENT_BYTES) × %d + %d runs (concurrency.global) × (%s loader + %d workers (FINSYNC_FINO_CONCURRENCY) × %s)",
		extract.Bytes(memoryBase), wholeSlots, extract.Bytes(int64(c.Memory.Document)), documentAmplification,
		runs, extract.Bytes(loader), workers, perWorker)
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
	if m.Document < 1<<20 {
		bad("FINSYNC_MAX_DOCUMENT_BYTES=%s: want at least 1MiB (a finAPI result page or a FinGoal batch is read whole)", m.Document)
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
