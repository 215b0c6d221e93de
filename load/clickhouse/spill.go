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

// spill is the file of what one INSERT sent, in Arrow's IPC stream format:
// a retry reads it back instead of the loader keeping the INSERT in memory.
// The operating system's page cache usually serves it; it is removed once
// the INSERT ended.
type spill struct {
	f      *os.File
	buf    *bufio.Writer
	w      *ipc.Writer
	schema *arrow.Schema
	closed bool  // written in full: only replays from here on
	err    error // a write failed: the file is unusable
}

func newSpill(dir string, t transform.Table) (*spill, error) {
	f, err := os.CreateTemp(dir, "finsync-insert-"+t.Name+"-*.arrows")
	if err != nil {
		return nil, fmt.Errorf("spill file for retries: %w", err)
	}
	buf := bufio.NewWriterSize(f, 1<<20)
	return &spill{f: f, buf: buf, w: ipc.NewWriter(buf, ipc.WithSchema(t.Schema)), schema: t.Schema}, nil
}

func (s *spill) write(rec arrow.Record) error {
	if s.err == nil {
		s.err = s.w.Write(rec)
	}
	if s.err != nil {
		return fmt.Errorf("spill file %s: %w", s.f.Name(), s.err)
	}
	return nil
}

// replay calls put with every record written, in order.
func (s *spill) replay(put func(arrow.Record) error) error {
	if !s.closed && s.err == nil {
		s.err = errors.Join(s.w.Close(), s.buf.Flush())
	}
	s.closed = true
	if s.err != nil {
		return permanent{fmt.Errorf("spill file %s: %w", s.f.Name(), s.err)}
	}
	if _, err := s.f.Seek(0, 0); err != nil {
		return permanent{err}
	}
	r, err := ipc.NewReader(bufio.NewReaderSize(s.f, 1<<20), ipc.WithSchema(s.schema), ipc.WithAllocator(memory.DefaultAllocator))
	if err != nil {
		return permanent{fmt.Errorf("spill file %s: %w", s.f.Name(), err)}
	}
	defer r.Release()
	for r.Next() {
		if err := put(r.Record()); err != nil {
			return err
		}
	}
	if err := r.Err(); err != nil {
		return permanent{fmt.Errorf("spill file %s: %w", s.f.Name(), err)}
	}
	return nil
}

func (s *spill) remove() {
	s.f.Close()
	os.Remove(s.f.Name())
}
