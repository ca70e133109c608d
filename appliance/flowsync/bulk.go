package flowsync

import (
	"context"
	"time"
)

// Synced reports whether a bulk resync from the peer has completed: the
// BulkEnd of our latest request arrived, with every message the peer sent
// from the start of that transfer to its end, and the record count it
// announced. It turns false again when a new resync starts (the peer
// restarted, RequestBulk, or a transfer came out incomplete). The daemon
// preempts the peer only while Synced.
func (e *Endpoint) Synced() bool { return e.synced.Load() }

// SyncChanged returns a channel closed at the next change of Synced.
// Watch it in a loop:
//
//	for {
//		ch := ep.SyncChanged()
//		apply(ep.Synced())
//		select {
//		case <-ch:
//		case <-ctx.Done():
//			return
//		}
//	}
func (e *Endpoint) SyncChanged() <-chan struct{} {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	return e.changed
}

// setSyncedLocked changes Synced and wakes its watchers. syncMu held.
func (e *Endpoint) setSyncedLocked(v bool) {
	if e.synced.Swap(v) != v {
		close(e.changed)
		e.changed = make(chan struct{})
	}
}

// RequestBulk starts a new bulk resync from the peer: Synced turns false
// and a BulkRequest with a new ID goes out now and every BulkRetry until
// its BulkEnd arrives. Run calls it at start, and the receive goroutine
// when the peer restarts or a transfer comes out incomplete.
func (e *Endpoint) RequestBulk() {
	e.syncMu.Lock()
	e.startRequestLocked(time.Now())
	e.syncMu.Unlock()
}

// restartBulk abandons the request in progress, if any, and starts anew.
func (e *Endpoint) restartBulk(why string) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	e.restartLocked(why)
}

func (e *Endpoint) restartLocked(why string) {
	if e.reqActive {
		e.stats.bulkIncomplete.Add(1)
		e.log.Warn("bulk resync incomplete, asking again", "request", e.req, "reason", why,
			"records", e.reqRecords)
	}
	e.startRequestLocked(time.Now())
}

func (e *Endpoint) startRequestLocked(now time.Time) {
	e.req++
	e.reqActive, e.endPending = true, false
	e.reqStart, e.reqSent = now, now
	e.reqFirst, e.reqRecords = 0, 0
	e.setSyncedLocked(false)
	e.sendBulkRequest(e.req)
}

// retryBulk repeats the outstanding request when BulkRetry has passed.
func (e *Endpoint) retryBulk(now time.Time) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if e.reqActive && now.Sub(e.reqSent) >= e.cfg.BulkRetry {
		e.reqSent = now
		e.sendBulkRequest(e.req)
	}
}

// bulkRecords counts the n records of a bulk Update for request id whose
// transfer began at sequence number first.
func (e *Endpoint) bulkRecords(id uint32, first, n uint64) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if !e.reqActive || id != e.req {
		return
	}
	if e.reqFirst != 0 && e.reqFirst != first {
		e.restartLocked("the peer restarted the transfer")
		return
	}
	e.reqFirst = first
	e.reqRecords += n
}

// checkLoss abandons the transfer in progress when a message sent since
// it began was lost (left the replay window without arriving).
func (e *Endpoint) checkLoss() {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if e.reqActive && e.reqFirst != 0 && e.open.win.lost >= e.reqFirst {
		e.restartLocked("messages lost")
	}
}

// bulkEnded handles the BulkEnd (sequence number seq) of request id: the
// transfer began at sequence number first and carried records records.
// Receive goroutine (it reads the window).
func (e *Endpoint) bulkEnded(seq uint64, id uint32, first, records uint64, now time.Time) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if !e.reqActive || id != e.req {
		return // an earlier request's, or a repeat of ours
	}
	if e.reqFirst != 0 && e.reqFirst != first {
		e.restartLocked("the peer restarted the transfer")
		return
	}
	e.reqFirst = first
	if !e.endPending {
		e.endSince, e.endSeq = now, seq
	}
	// The first BulkEnd bounds the transfer; a repeat (answering our
	// repeated request) spans messages sent after it.
	e.endPending, e.endSeq, e.endRecords = true, min(e.endSeq, seq), records
	e.judgeEndLocked(now)
}

// recheckBulkEnd judges a pending BulkEnd again: a message that was
// missing arrived late. Receive goroutine.
func (e *Endpoint) recheckBulkEnd(now time.Time) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if e.reqActive && e.endPending {
		e.judgeEndLocked(now)
	}
}

// judgeEndLocked completes the transfer whose BulkEnd arrived when every
// message from its first to the BulkEnd is in and the record count
// agrees. While messages are missing but may still come (asked for again
// with a Nack), it waits, for up to BulkRetry; a message lost for good
// or a count that differs starts a new request.
func (e *Endpoint) judgeEndLocked(now time.Time) {
	w := &e.open.win
	switch {
	case !w.complete(e.reqFirst, e.endSeq):
		if w.lost >= e.reqFirst || e.reqFirst < w.base || now.Sub(e.endSince) >= e.cfg.BulkRetry {
			e.restartLocked("messages lost")
		}
	case e.reqRecords != e.endRecords:
		e.restartLocked("record count differs")
	default:
		e.reqActive, e.endPending = false, false
		d := now.Sub(e.reqStart)
		e.stats.lastBulkDuration.Store(int64(d))
		e.stats.lastBulkRecords.Store(e.endRecords)
		e.setSyncedLocked(true)
		e.log.Info("bulk resync complete", "request", e.req, "records", e.endRecords, "duration", d)
	}
}

// bulkRequested takes a BulkRequest from the peer. Repeats of the request
// being served are ignored (the requester repeats until done); a repeat
// of the one completed gets its BulkEnd again (ours was lost, or crossed
// the repeat); any other request supersedes the one in progress.
func (e *Endpoint) bulkRequested(j bulkJob) {
	e.bulkMu.Lock()
	l := e.bulkLatest
	if j.node == l.node && j.epoch == l.epoch && int32(j.id-l.id) < 0 {
		e.bulkMu.Unlock()
		return // older than one already seen: reordered
	}
	e.bulkLatest = j
	var resend bool
	var end [2]uint64
	switch {
	case e.bulkActive && e.bulkServing == j, e.bulkPending && e.bulkNext == j:
	case e.bulkDoneOK && e.bulkDone == j:
		resend, end = true, e.bulkDoneEnd
	default:
		e.bulkNext, e.bulkPending = j, true
		e.bulkGen.Add(1)
		select {
		case e.bulkWake <- struct{}{}:
		default:
		}
	}
	e.bulkMu.Unlock()
	if resend {
		e.sendBulkEnd(j.id, end[0], end[1])
	}
}

// bulkLoop serves bulk requests, one at a time, until ctx is done.
func (e *Endpoint) bulkLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.bulkWake:
		}
		for ctx.Err() == nil {
			e.bulkMu.Lock()
			if !e.bulkPending {
				e.bulkMu.Unlock()
				break
			}
			j := e.bulkNext
			e.bulkPending = false
			e.bulkServing, e.bulkActive = j, true
			gen := e.bulkGen.Load()
			e.bulkMu.Unlock()

			first, n, ok := e.serve(ctx, j, gen)

			e.bulkMu.Lock()
			e.bulkActive = false
			if ok {
				e.bulkDone, e.bulkDoneOK, e.bulkDoneEnd = j, true, [2]uint64{first, n}
			}
			e.bulkMu.Unlock()
		}
	}
}

// serve walks the table for request j, sends it in bulk Updates at no
// more than BulkRate records a second, then the BulkEnd. It gives up
// (ok false, no BulkEnd) when ctx ends or a newer request arrives (the
// generation moves on from gen).
func (e *Endpoint) serve(ctx context.Context, j bulkJob, gen uint64) (first, n uint64, ok bool) {
	start := time.Now()
	e.sendMu.Lock()
	first = e.seal.seq + 1 // every message from here on is part of the transfer's span
	e.sendMu.Unlock()

	p := pacer{rate: e.cfg.BulkRate, start: start}
	defer p.stop()
	begin := func() []byte {
		return appendBulkPrefix(appendHeader(e.bulkBuf[:0], TypeUpdate, flagBulk), j.id, first)
	}
	buf, count := begin(), 0
	send := func() {
		e.sendMu.Lock()
		buf = e.seal.seal(buf, count)
		e.writeLocked(buf, count)
		e.sendMu.Unlock()
		buf, count = begin(), 0
	}
	abort := false
	if e.cfg.Walk != nil {
		e.cfg.Walk(func(r Record) bool {
			if abort || ctx.Err() != nil || e.bulkGen.Load() != gen {
				abort = true
				return false
			}
			buf = r.Append(buf)
			count++
			n++
			if count == e.maxBulk {
				send()
				if !p.wait(ctx, n) {
					abort = true
					return false
				}
			}
			return true
		})
	}
	if abort || ctx.Err() != nil || e.bulkGen.Load() != gen {
		return first, n, false
	}
	if count > 0 {
		send()
	}
	d := time.Since(start)
	e.stats.lastServedDuration.Store(int64(d))
	e.stats.lastServedRecords.Store(n)
	e.stats.bulkServed.Add(1)
	e.sendBulkEnd(j.id, first, n)
	e.log.Info("bulk transfer served", "request", j.id, "records", n, "duration", d)
	return first, n, true
}

// pacer spaces a bulk transfer to rate records a second. It sleeps only
// once a millisecond or more ahead, as a sleep is coarse next to one
// message (40µs at the default rate); and after a stall it allows a burst
// of at most maxBurst before pacing again.
type pacer struct {
	rate  int
	start time.Time
	base  uint64 // records sent before start
	timer *time.Timer
}

const maxBurst = 50 * time.Millisecond

// wait blocks until sent records are due; false if ctx ended meanwhile.
func (p *pacer) wait(ctx context.Context, sent uint64) bool {
	due := p.start.Add(time.Duration(float64(sent-p.base) / float64(p.rate) * float64(time.Second)))
	d := time.Until(due)
	if d < -maxBurst {
		p.start, p.base = time.Now(), sent // stalled: do not make up for it all at once
		return true
	}
	if d < time.Millisecond {
		return true
	}
	if p.timer == nil {
		p.timer = time.NewTimer(d)
	} else {
		p.timer.Reset(d)
	}
	select {
	case <-ctx.Done():
		return false
	case <-p.timer.C:
		return true
	}
}

func (p *pacer) stop() {
	if p.timer != nil {
		p.timer.Stop()
	}
}
