package conntrack

import "time"

// Insert adds flow f in state st with the state's timeout counted from
// now, and returns its entry. The caller must be between Begin and End of
// its Reader. Insert is lock-free and allocates nothing.
//
//   - ErrExists: a flow with f.Orig is live (or being inserted by another
//     worker right now); that entry is returned. A flow with f.Orig that is
//     past its deadline is removed (and reported to Sweep's callback) and
//     the insert goes ahead.
//   - ErrReplyExists: f.Reply is indexed by another flow, which is returned.
//   - ErrFull: no free entry; nil, counted in Stats.Refused. Nothing is
//     evicted.
//   - ErrInvalid: st is not a state for f's protocol (TCP: SynSent to
//     Close; ProtoPersist: Persist with a nonzero PersistTimeout; other
//     protocols: UDPUnreplied or UDP), or f.Reply equals f.Orig.
//
// A one-way flow inserted in UDPUnreplied is stored as UDP (nothing will
// ever reply).
func (t *Table[K]) Insert(f *Flow[K], st State, now Time) (*Entry[K], error) {
	st, ok := t.checkFlow(f, st)
	if !ok {
		return nil, ErrInvalid
	}
	return t.insert(f, st, deadlineAfter(now, t.timeout(f, st)), now, false)
}

// checkFlow validates f and st and returns the state to store.
func (t *Table[K]) checkFlow(f *Flow[K], st State) (State, bool) {
	switch p := keyProto(&f.Orig); {
	case p == 6:
		if st < StateSynSent || st > StateClose {
			return st, false
		}
	case p == ProtoPersist:
		if st != StatePersist || f.PersistTimeout == 0 {
			return st, false
		}
	default:
		if st != StateUDPUnreplied && st != StateUDP {
			return st, false
		}
		if f.OneWay {
			st = StateUDP
		}
	}
	if f.HasReply && keyEqual(&f.Orig, &f.Reply) {
		return st, false
	}
	return st, true
}

// Timeout returns the idle timeout of flow f in state st: the table's
// timeout for the state, or f's PersistTimeout for StatePersist. HA sync
// sends it as the Remaining of a flow that just changed state.
func (t *Table[K]) Timeout(f *Flow[K], st State) time.Duration {
	return time.Duration(t.timeout(f, st))
}

// timeout returns the timeout of state st for flow f, in nanoseconds.
func (t *Table[K]) timeout(f *Flow[K], st State) int64 {
	if st == StatePersist {
		return int64(f.PersistTimeout) * int64(time.Second)
	}
	return t.tmo[st&15]
}

// insert is Insert and Import: claim both keys (replace: remove any live
// holder, as Import does), take an entry, publish it as pending under both
// keys, settle races with concurrent inserts of the same keys, then make
// it live.
func (t *Table[K]) insert(f *Flow[K], st State, dl uint32, now Time, replace bool) (*Entry[K], error) {
	// Two racers inserting the same full-NAT flow settle each key on its
	// own, so each can win one key and both back out. A loser whose winner
	// is not live yet therefore tries again: by then the winner is live
	// (and the retry reports it) or backed out too (and the retry
	// inserts). Bounded: racing inserts of one key are rare.
	for attempt := 0; ; attempt++ {
		x, err := t.insertOnce(f, st, dl, now, replace)
		if x == nil || attempt == 8 || (err != ErrExists && err != ErrReplyExists) || isLive(x.word.Load()) {
			return x, err
		}
	}
}

func (t *Table[K]) insertOnce(f *Flow[K], st State, dl uint32, now Time, replace bool) (*Entry[K], error) {
	ho := t.Hash(&f.Orig)
	home := t.shardOf(ho)
	sh := &t.shards[home]
	var hr uint64
	if f.HasReply {
		hr = t.Hash(&f.Reply)
		if t.prefetch {
			// Overlap the two home buckets' cache misses.
			prefetch(addrOf(&t.buckets[hr&t.mask]))
		}
	}
	if x := t.claim(&f.Orig, ho, now, replace, sh); x != nil {
		sh.exists.Add(1)
		return x, ErrExists
	}
	if f.HasReply {
		if x := t.claim(&f.Reply, hr, now, replace, sh); x != nil {
			sh.exists.Add(1)
			return x, ErrReplyExists
		}
	}

	idx, ok := t.alloc(home)
	if !ok {
		sh.refused.Add(1)
		return nil, ErrFull
	}
	e := &t.arena[idx]
	e.flow = *f
	// Readers that find the entry before it is live see kindPending and
	// pass over it; the store orders the flow writes before any slot CAS.
	e.word.Store(kindPending)

	vo := slotVal(ho, idx, DirOriginal)
	po := t.place(ho, vo)
	if po < 0 {
		t.abandon(idx)
		sh.refused.Add(1)
		return nil, ErrFull
	}
	var vr uint64
	pr := -1
	if f.HasReply {
		vr = slotVal(hr, idx, DirReply)
		if pr = t.place(hr, vr); pr < 0 {
			t.unlink(ho, vo)
			t.abandon(idx)
			sh.refused.Add(1)
			return nil, ErrFull
		}
	}

	x := t.settle(&f.Orig, ho, vo, po, sh)
	err := ErrExists
	if x == nil && f.HasReply {
		x = t.settle(&f.Reply, hr, vr, pr, sh)
		err = ErrReplyExists
	}
	if x != nil {
		t.unlink(ho, vo)
		if f.HasReply {
			t.unlink(hr, vr)
		}
		t.abandon(idx)
		sh.exists.Add(1)
		return x, err
	}

	e.word.Store(liveWord(st, 0, dl))
	if replace {
		t.imported.Add(1)
	} else {
		sh.inserted.Add(1)
	}
	return e, nil
}

// abandon hands a pending entry whose keys are already unlinked to Sweep.
func (t *Table[K]) abandon(idx uint32) {
	t.orphan(idx, kindOrphanAborted)
}

// claim scans k's probe sequence for a flow holding k. It returns a live
// holder that is not past its deadline, or a pending one (another insert
// in flight). A live holder past its deadline, or with replace any live
// holder, is killed: its keys are removed and Sweep reports it.
func (t *Table[K]) claim(k *K, h uint64, now Time, replace bool, sh *shard) *Entry[K] {
	for {
		x, retry := t.claimOnce(k, h, now, replace, sh)
		if !retry {
			return x
		}
	}
}

func (t *Table[K]) claimOnce(k *K, h uint64, now Time, replace bool, sh *shard) (*Entry[K], bool) {
	tag := tagOf(h)
	b := h & t.mask
	for i := uint64(0); i <= t.mask; i++ {
		bk := &t.buckets[b]
		for s := range bk.slot {
			v := bk.slot[s].Load()
			if uint32(v>>32) != tag {
				continue
			}
			x := t.entryAt(v)
			w := x.word.Load()
			switch {
			case isLive(w):
				if !keyEqual(x.key(slotDir(v)), k) {
					continue
				}
				exp := expiredAt(w, now)
				if !exp && !replace {
					return x, false
				}
				if !x.word.CompareAndSwap(w, linkWord(kindDead, 0)) {
					return nil, true // refreshed or killed meanwhile: look again
				}
				t.unlinkEntry(x, slotIdx(v))
				t.orphan(slotIdx(v), kindOrphanExpired)
				if exp {
					sh.expired.Add(1)
				} else {
					t.replaced.Add(1)
				}
			case wordKind(w) == kindPending:
				if keyEqual(x.key(slotDir(v)), k) {
					return x, false
				}
			}
		}
		if bk.ovf.Load() == 0 {
			break
		}
		b = (b + i + 1) & t.mask
	}
	return nil, false
}

// settle resolves a race between inserts of the same key k. After
// publishing its own slot mine at position pos, each inserter rescans k's
// probe sequence. A live holder of k, or a pending one at an earlier
// position, wins: settle returns it and the caller backs out. A pending
// holder at a later position loses: settle removes its slot. Because
// every inserter publishes before it rescans, of two racing inserters at
// least one sees the other (sequentially consistent atomics), so at most
// one copy of k stays indexed. The loser that did not see the winner
// still becomes live, reachable only through its other key (if any), and
// ages out normally.
func (t *Table[K]) settle(k *K, h, mine uint64, pos int, sh *shard) *Entry[K] {
	tag := tagOf(h)
	me := slotIdx(mine)
	b := h & t.mask
	for i := uint64(0); i <= t.mask; i++ {
		bk := &t.buckets[b]
		for s := range bk.slot {
			v := bk.slot[s].Load()
			if uint32(v>>32) != tag || slotIdx(v) == me {
				continue
			}
			x := t.entryAt(v)
			w := x.word.Load()
			switch {
			case isLive(w):
				if keyEqual(x.key(slotDir(v)), k) {
					sh.clashes.Add(1)
					return x
				}
			case wordKind(w) == kindPending:
				if !keyEqual(x.key(slotDir(v)), k) {
					continue
				}
				if int(i)*8+s < pos {
					sh.clashes.Add(1)
					return x
				}
				if bk.slot[s].CompareAndSwap(v, 0) {
					t.decPath(h, int(i))
					sh.clashes.Add(1)
				}
			}
		}
		if bk.ovf.Load() == 0 {
			break
		}
		b = (b + i + 1) & t.mask
	}
	return nil
}
