package sandboxkit

import "sync"

// Outage is a fault that sticks to subjects (users, processes): a request
// about a subject that is down is answered 503, however often a run
// retries, unlike the Knobs' faults, which never stick to anything. It
// counts the requests about each subject, so a test sees which subjects a
// run asked about. The zero Outage has every subject up; a nil one is
// never down and counts nothing.
type Outage struct {
	mu    sync.Mutex
	down  map[string]bool
	asked map[string]int
}

// Set takes subject down or brings it back.
func (o *Outage) Set(subject string, down bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.down == nil {
		o.down = map[string]bool{}
	}
	o.down[subject] = down
}

// Down counts a request about subject and says whether it is down.
func (o *Outage) Down(subject string) bool {
	if o == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.asked == nil {
		o.asked = map[string]int{}
	}
	o.asked[subject]++
	return o.down[subject]
}

// Asked returns the requests about each subject since the last call.
func (o *Outage) Asked() map[string]int {
	o.mu.Lock()
	defer o.mu.Unlock()
	asked := o.asked
	o.asked = nil
	return asked
}
