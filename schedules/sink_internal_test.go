package schedules

import (
	"context"
	"testing"
	"time"

	"github.com/finsync/finsync/extract"
	"github.com/finsync/finsync/transform"
)

// A record rejected twice in one run (its page read again after a retry,
// or repeated by the provider) is one reject: the run's count is what
// etl_rejects holds once its rows merge (the soak test saw 6 reported, 5
// stored). Records without an id count by their payload.
func TestARecordRejectedTwiceIsOneReject(t *testing.T) {
	s := newSink(context.Background(), nil, "fino.transactions", transform.Lineage{RunID: "r", ExtractedAt: time.Unix(1_800_000_000, 0).UTC()})
	for _, r := range []extract.Reject{
		{Table: "transactions", Key: "t1", Reason: "bad amount", Raw: []byte(`{"id":"t1"}`)},
		{Table: "transactions", Key: "t2", Reason: "bad amount", Raw: []byte(`{"id":"t2"}`)},
		{Table: "transactions", Key: "t1", Reason: "bad amount", Raw: []byte(`{"id":"t1"}`)}, // the page again
		{Table: "transactions", Reason: "no id", Raw: []byte(`{"x":1}`)},
		{Table: "transactions", Reason: "no id", Raw: []byte(`{"x":1}`)},
		{Table: "transactions", Reason: "no id", Raw: []byte(`{"x":2}`)},
	} {
		if err := s.Reject(r); err != nil {
			t.Fatal(err)
		}
	}
	rec := s.rejected.Record()
	defer rec.Release()
	if s.rejects != 4 || rec.NumRows() != 4 {
		t.Errorf("counted %d rejects, %d etl_rejects rows; want 4 of each (t1, t2 and two payloads)", s.rejects, rec.NumRows())
	}
}
