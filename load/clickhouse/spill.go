package clickhouse

import (
	"bufio"
	"errors"
	"fmt"
	"os"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/ipc"
	"github.com/apache/arrow/go/v17/arrow/memory"

	"github.com/finsync/finsync/transform"
)

// replay keeps what one INSERT sent, so that a retry can send it again:
// in memory up to RetainBytes, beyond that in a spill file (Arrow's IPC
// stream format) if the loader has a SpillDir, else not at all — then the
// INSERT cannot be retried once it outgrew the budget, and its failure
// fails the batch (the run checkpoints nothing; the next run loads the
// data again).
//
// Measured: spilling a 1,000,000-row INSERT (1.2 GB) took a quarter of a
// run's CPU in write syscalls and competed with ClickHouse for the disk,
// so the file is opt-in.
type replay struct {
	table  transform.Table
	budget int64
	dir    string

	recs  []arrow.Record // retained, while bytes ≤ budget
	bytes int64
	lost  bool // outgrew the budget without a file: not replayable

	f      *os.File
	buf    *bufio.Writer
	w      *ipc.Writer
	closed bool  // the file is written in full
	err    error // a write failed: the file is unusable
}

func newReplay(t transform.Table, budget int64, dir string) *replay {
	return &replay{table: t, budget: budget, dir: dir}
}

// keep records rec as sent.
func (r *replay) keep(rec arrow.Record) error {
	switch {
	case r.lost:
		return nil
	case r.f != nil:
		return r.write(rec)
	}
	rec.Retain()
	r.recs = append(r.recs, rec)
	r.bytes += recordBytes(rec)
	if r.bytes <= r.budget {
		return nil
	}
	if r.dir == "" {
		r.release()
		r.lost = true
		return nil
	}
	// Over the budget: what was kept moves to the file.
	f, err := os.CreateTemp(r.dir, "finsync-insert-"+r.table.Name+"-*.arrows")
	if err != nil {
		return fmt.Errorf("spill file for retries: %w", err)
	}
	r.f, r.buf = f, bufio.NewWriterSize(f, 1<<20)
	r.w = ipc.NewWriter(r.buf, ipc.WithSchema(r.table.Schema))
	kept := r.recs
	r.recs = nil
	defer func() {
		for _, k := range kept {
			k.Release()
		}
	}()
	for _, k := range kept {
		if err := r.write(k); err != nil {
			return err
		}
	}
	return nil
}

func (r *replay) write(rec arrow.Record) error {
	if r.err == nil {
		r.err = r.w.Write(rec)
	}
	if r.err != nil {
		return fmt.Errorf("spill file %s: %w", r.f.Name(), r.err)
	}
	return nil
}

// replayable reports whether everything sent was kept.
func (r *replay) replayable() bool { return !r.lost }

// each calls put with every record kept, in order.
func (r *replay) each(put func(arrow.Record) error) error {
	if r.f == nil {
		for _, rec := range r.recs {
			if err := put(rec); err != nil {
				return err
			}
		}
		return nil
	}
	if !r.closed && r.err == nil {
		r.err = errors.Join(r.w.Close(), r.buf.Flush())
	}
	r.closed = true
	if r.err != nil {
		return permanent{fmt.Errorf("spill file %s: %w", r.f.Name(), r.err)}
	}
	if _, err := r.f.Seek(0, 0); err != nil {
		return permanent{err}
	}
	rd, err := ipc.NewReader(bufio.NewReaderSize(r.f, 1<<20), ipc.WithSchema(r.table.Schema), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return permanent{fmt.Errorf("spill file %s: %w", r.f.Name(), err)}
	}
	defer rd.Release()
	for rd.Next() {
		if err := put(rd.Record()); err != nil {
			return err
		}
	}
	if err := rd.Err(); err != nil {
		return permanent{fmt.Errorf("spill file %s: %w", r.f.Name(), err)}
	}
	return nil
}

// release drops what was kept.
func (r *replay) release() {
	for _, rec := range r.recs {
		rec.Release()
	}
	r.recs = nil
	if r.f != nil {
		r.f.Close()
		os.Remove(r.f.Name())
	}
}
