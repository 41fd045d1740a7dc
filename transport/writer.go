package transport

import (
	"fmt"
	"runtime"
	"slices"
	"time"
)

// writeLoop is the connection's only writer. Each round it takes the control
// frames and the messages queued since the last round, writes the control
// frames, then one fragment of each unfinished message in turn (so a big
// message does not stall small ones), and flushes only when it has nothing
// left to write.
func (c *Conn) writeLoop() {
	defer c.exit()
	bw := c.bw
	c.wmu.Lock() // held while the writer is active: see sendDirect
	defer c.wmu.Unlock()
	var (
		pending, spare []outFrame
		busy           map[msgKey]struct{} // keys of messages with fragments left this round
		yielded        bool                // yielded once since the last frames were written
	)
	fail := func(err error, rest ...[]outFrame) {
		c.fail(fmt.Errorf("transport: write: %w", err))
		for _, r := range rest {
			for i := range r {
				c.drop(&r[i])
			}
		}
	}
	for {
		c.mu.Lock()
		for len(c.queue) == 0 && len(pending) == 0 && !c.ctl.any() {
			closing, err := c.closing, c.err
			c.mu.Unlock()
			if err != nil {
				return
			}
			if bw.Buffered() > 0 && !yielded {
				// Before flushing, let the goroutines that are about to
				// send run once: their frames join this write.
				yielded = true
				runtime.Gosched()
			} else if bw.Buffered() > 0 {
				if err := bw.Flush(); err != nil {
					fail(err)
					return
				}
			} else if closing {
				c.finishClose()
				return
			} else {
				// Idle: a Send may write its frame itself meanwhile.
				c.wmu.Unlock()
				select {
				case <-c.wake:
				case <-c.done:
					c.wmu.Lock()
					return
				}
				c.wmu.Lock()
			}
			c.mu.Lock()
		}
		if c.err != nil { // closed while the last round was being written
			c.mu.Unlock()
			for i := range pending {
				c.drop(&pending[i])
			}
			return
		}
		ctl := c.ctl
		c.ctl = control{}
		yielded = false
		pending = append(pending, c.queue...)
		clear(c.queue)
		c.queue = c.queue[:0]
		c.mu.Unlock()

		if err := writeControl(bw, ctl); err != nil {
			fail(err, pending)
			return
		}
		next := spare[:0]
		freed, paid := 0, 0
		clear(busy)
		// Small messages first; then at most one frame of bulk data, the
		// rest waiting for the next round, which new small messages join.
		bulkWritten := false
		sortBulkLast(pending)
		for i := range pending {
			f := &pending[i]
			key := msgKey{id: f.id, kind: f.kind}
			if f.bulk {
				if bulkWritten {
					next = append(next, *f)
					continue
				}
				bulkWritten = true
			}
			if len(busy) > 0 {
				if _, ok := busy[key]; ok {
					// An earlier message with the same key is unfinished:
					// this one waits, so the two never interleave.
					next = append(next, *f)
					continue
				}
			}
			size := 0
			if f.buf != nil {
				size = f.buf.Len()
			}
			chunk, flags := size-f.off, uint8(0)
			if chunk > MaxFramePayload {
				chunk, flags = MaxFramePayload, FlagMore
			}
			var payload []byte
			if chunk > 0 {
				payload = f.buf.Bytes()[f.off : f.off+chunk]
			}
			if err := bw.writeFrame(Header{Kind: f.kind, Flags: flags, ID: f.id}, payload); err != nil {
				c.paid(paid) // the messages written before
				fail(err, next, pending[i:])
				return
			}
			if f.off > 0 || flags&FlagMore != 0 {
				// Progress inside a big message, which frees no queue
				// space until it ends: a blocked Send must not take the
				// peer for stalled (see waitSpace).
				c.lastWrite.Store(int64(time.Since(c.start)))
			}
			f.off += chunk
			if flags&FlagMore != 0 {
				if busy == nil {
					busy = make(map[msgKey]struct{})
				}
				busy[key] = struct{}{}
				next = append(next, *f)
				continue
			}
			freed += f.charge
			paid += f.owed
			PutBuffer(f.buf)
		}
		clear(pending)
		pending, spare = next, pending[:0]
		// Replies written are paid before the queue space is freed, so that
		// a reader waiting for them to drain (waitOwed) sees them paid.
		c.paid(paid)
		if freed > 0 {
			c.mu.Lock()
			c.queued -= freed
			c.freeSpace()
			c.mu.Unlock()
		}
	}
}

// sendDirect writes a message of one frame on the caller's goroutine when
// the writer is idle and nothing is queued, saving the hand-off to the
// writer (a one-caller call then crosses fewer goroutines, a stream's
// chunk goes from its pump straight to the socket); when the writer is
// busy, the message is queued and batched instead. It reports whether it
// took the message.
func (c *Conn) sendDirect(f outFrame) (bool, error) {
	if !c.wmu.TryLock() {
		return false, nil
	}
	defer c.wmu.Unlock()
	c.mu.Lock()
	idle := c.started && c.err == nil && !c.closing && len(c.queue) == 0 && !c.ctl.any() && c.bw.Buffered() == 0
	c.mu.Unlock()
	if !idle {
		return false, nil
	}
	var payload []byte
	if f.buf != nil {
		payload = f.buf.Bytes()
	}
	err := c.bw.writeFrame(Header{Kind: f.kind, ID: f.id}, payload)
	if err == nil {
		err = c.bw.Flush()
	}
	PutBuffer(f.buf)
	if err != nil {
		err = fmt.Errorf("transport: write: %w", err)
		c.fail(err)
		return true, err
	}
	return true, nil
}

// sortBulkLast moves the bulk messages after the others, keeping the order
// within each group.
func sortBulkLast(fs []outFrame) {
	slices.SortStableFunc(fs, func(a, b outFrame) int {
		switch {
		case a.bulk == b.bulk:
			return 0
		case a.bulk:
			return 1
		}
		return -1
	})
}

// writeControl writes the control frames in ctl.
func writeControl(bw *frameWriter, ctl control) error {
	frames := [...]struct {
		due  bool
		kind Kind
		id   uint64
	}{
		{ctl.goAway, frameGoAway, 0},
		{ctl.ping, framePing, ctl.pingID},
		{ctl.pong, framePong, ctl.pongID},
	}
	for _, f := range frames {
		if !f.due {
			continue
		}
		if err := bw.writeFrame(Header{Kind: f.kind, ID: f.id}, nil); err != nil {
			return err
		}
	}
	return nil
}

// finishClose is run by the writer once a graceful Close has written and
// flushed everything queued (the GoAway included). It half-closes the
// connection, so the peer's reader sees the end of the stream, and gives
// the peer up to KeepaliveInterval to close its side, which ends our reader
// and lets the last frames it sent reach our Handler; then it closes.
func (c *Conn) finishClose() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	timer := time.NewTimer(c.cfg.KeepaliveInterval)
	defer timer.Stop()
	select {
	case <-c.done:
	case <-timer.C:
	}
	c.fail(ErrClosed)
}
