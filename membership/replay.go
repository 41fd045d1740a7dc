package membership

// replayWindowSize is how far behind the highest sequence number seen a packet may
// be and still be accepted (once): enough for reordering between the multicast and
// unicast paths, not enough for an old capture to be replayed.
const replayWindowSize = 64

// replayWindow is a sliding anti-replay window over one sender's sequence numbers,
// as in IPsec (RFC 4303 §3.4.3): the highest number seen plus a bitmap of the
// replayWindowSize numbers below it.
type replayWindow struct {
	top  uint64 // highest sequence number accepted
	bits uint64 // bit i set: top-i was accepted
	used bool
}

// accept reports whether seq is new, and records it if so.
func (w *replayWindow) accept(seq uint64) bool {
	if !w.used {
		w.used, w.top, w.bits = true, seq, 1
		return true
	}
	if seq > w.top {
		shift := seq - w.top
		if shift >= replayWindowSize {
			w.bits = 1
		} else {
			w.bits = w.bits<<shift | 1
		}
		w.top = seq
		return true
	}
	d := w.top - seq
	if d >= replayWindowSize || w.bits&(1<<d) != 0 {
		return false
	}
	w.bits |= 1 << d
	return true
}

// behind reports whether seq is so far below the highest number seen that it
// falls out of the window: either a very old packet, or a sender that someone
// else pushed ahead with a forged higher sequence number.
func (w *replayWindow) behind(seq uint64) bool {
	return w.used && seq < w.top && w.top-seq >= replayWindowSize
}
