package flowsync

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Importer receives the records the peer sends, after authentication.
// Import is called from the Endpoint's receive goroutine, one record at a
// time, never concurrently with itself; the next datagram waits for it.
// An error is counted (Snapshot.ImportErrors) and the record dropped.
type Importer interface {
	Import(Record) error
}

// LateImporter is an Importer told which records arrived late: in a
// message sent again for a Nack (or overtaken on the way), after later
// messages that may have changed the same flows. ImportLate is called for
// those instead of Import, so that an old record does not undo a newer
// one; an Importer without it gets them through Import.
type LateImporter interface {
	Importer
	ImportLate(Record) error
}

// Defaults of the zero Config fields.
const (
	DefaultFlushInterval     = 10 * time.Millisecond
	DefaultHeartbeatInterval = 150 * time.Millisecond
	DefaultBulkRetry         = 500 * time.Millisecond
	DefaultBulkRate          = 200_000 // records per second
	DefaultSendTimeout       = 20 * time.Millisecond
	DefaultReadBuffer        = 4 << 20
)

// Config configures an Endpoint. Zero fields take the defaults above;
// Node, Key, Local and Peer are required.
type Config struct {
	// Node identifies this appliance; nonzero, and different from the
	// peer's (a message carrying our own Node is rejected as looped).
	Node uint32
	// Key is the pre-shared HMAC-SHA256 key, at least MinKeySize bytes,
	// the same on both peers. New copies it.
	Key []byte
	// Local is the address and UDP port to listen on (port 0 picks one:
	// see Endpoint.LocalAddr). Peer is where messages go.
	Local, Peer netip.AddrPort
	// Epoch identifies this run of the sender; it must be larger than
	// any epoch this node used before, so zero means the wall clock in
	// Unix nanoseconds at New.
	Epoch uint64

	// MaxMessageSize is the largest datagram sent, in
	// [MinMessageSize, MaxMessageSize]; zero means
	// DefaultMaxMessageSize. The receiver takes any size up to 64 KiB.
	MaxMessageSize int
	// FlushInterval bounds how long Send keeps records waiting for a
	// full message.
	FlushInterval time.Duration
	// HeartbeatInterval is how often a Heartbeat goes out.
	HeartbeatInterval time.Duration
	// BulkRetry is how often a BulkRequest is repeated until its BulkEnd
	// arrives.
	BulkRetry time.Duration
	// BulkRate caps the records per second of a bulk transfer we serve.
	BulkRate int
	// SendTimeout bounds one datagram write; a write that times out is
	// counted in SendErrors and dropped.
	SendTimeout time.Duration
	// ReadBuffer is the socket receive buffer asked for. A bulk transfer
	// arrives in bursts. On Linux, SO_RCVBUFFORCE is tried first (it needs
	// CAP_NET_ADMIN), then SO_RCVBUF, which net.core.rmem_max caps; a
	// smaller buffer than asked is logged.
	ReadBuffer int

	// Importer receives the peer's records; nil counts and drops them.
	Importer Importer
	// Walk yields every flow of our table for a bulk transfer the peer
	// asked for; nil serves an empty table. It is called from the
	// Endpoint's bulk goroutine, concurrently with Importer, and must stop
	// when yield returns false.
	Walk iter.Seq[Record]
	// Log receives transitions (peer restarts, resyncs, send failures),
	// never individual messages; nil discards. Scoped With("component",
	// "flowsync").
	Log *slog.Logger
}

// Validate reports every problem of c, joined.
func (c *Config) Validate() error {
	var errs []error
	if c.Node == 0 {
		errs = append(errs, errors.New("node: must be nonzero"))
	}
	if len(c.Key) < MinKeySize {
		errs = append(errs, fmt.Errorf("key: %d bytes, want at least %d", len(c.Key), MinKeySize))
	}
	if !c.Local.IsValid() {
		errs = append(errs, errors.New("local: not an address and port"))
	}
	if !c.Peer.IsValid() || c.Peer.Port() == 0 {
		errs = append(errs, fmt.Errorf("peer: %v: not an address and nonzero port", c.Peer))
	}
	if c.Local.IsValid() && c.Local == c.Peer {
		errs = append(errs, fmt.Errorf("peer: %v is the local address", c.Peer))
	}
	if c.MaxMessageSize != 0 && (c.MaxMessageSize < MinMessageSize || c.MaxMessageSize > MaxMessageSize) {
		errs = append(errs, fmt.Errorf("max message size: %d not in [%d, %d]", c.MaxMessageSize, MinMessageSize, MaxMessageSize))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"flush interval", c.FlushInterval},
		{"heartbeat interval", c.HeartbeatInterval},
		{"bulk retry", c.BulkRetry},
		{"send timeout", c.SendTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: %v is negative", d.name, d.v))
		}
	}
	if c.BulkRate < 0 {
		errs = append(errs, fmt.Errorf("bulk rate: %d is negative", c.BulkRate))
	}
	if c.ReadBuffer < 0 {
		errs = append(errs, fmt.Errorf("read buffer: %d is negative", c.ReadBuffer))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	c.FlushInterval = cmp.Or(c.FlushInterval, DefaultFlushInterval)
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, DefaultHeartbeatInterval)
	c.BulkRetry = cmp.Or(c.BulkRetry, DefaultBulkRetry)
	c.SendTimeout = cmp.Or(c.SendTimeout, DefaultSendTimeout)
	c.MaxMessageSize = cmp.Or(c.MaxMessageSize, DefaultMaxMessageSize)
	c.BulkRate = cmp.Or(c.BulkRate, DefaultBulkRate)
	c.ReadBuffer = cmp.Or(c.ReadBuffer, DefaultReadBuffer)
	c.Epoch = cmp.Or(c.Epoch, uint64(time.Now().UnixNano()))
	c.Key = append([]byte(nil), c.Key...)
	return c
}

// Endpoint is one side of the sync link: a UDP socket that sends our
// table's changes to the peer and imports the peer's. Both appliances of
// a pair run one; which of them calls Send is the daemon's business.
//
// Create it with New and run it with Run. Send, Flush, RequestBulk,
// SetPeer, Synced, SyncChanged, Stats and LocalAddr are safe from any
// goroutine at any time. The zero Endpoint is not usable.
//
// Goroutines (while Run runs): the receive goroutine reads, verifies and
// imports; the timer goroutine flushes partial messages, sends heartbeats
// and repeats bulk requests; the bulk goroutine walks the table for the
// peer. Locks, always taken in this order: syncMu (our resync state), then
// sendMu (the sealer, the pending Update and the socket's write side);
// bulkMu (the transfers we serve) is never held with another.
type Endpoint struct {
	cfg   Config
	log   *slog.Logger
	conn  *net.UDPConn
	local netip.AddrPort

	maxLive int // records in a live Update
	maxBulk int // records in a bulk Update

	sendMu      sync.Mutex
	seal        sealer
	peer        netip.AddrPort
	live        []byte // pending Update: header and liveN records; cap MaxMessageSize
	liveN       int
	ctl         []byte // scratch for BulkRequest, BulkEnd and Heartbeat
	sendFailing bool
	drop        func(b []byte) bool // test hook: true drops the datagram as the network would
	// hist keeps the last messages sent, by sequence number modulo its
	// length, so that a Nack can have them again; histBuf backs them.
	hist    []sentMessage
	histBuf []byte

	syncMu     sync.Mutex
	req        uint32 // our latest bulk request
	reqActive  bool   // req awaits its BulkEnd
	reqStart   time.Time
	reqSent    time.Time
	reqFirst   uint64 // the peer's first sequence number for req, from its bulk messages; 0 unknown
	reqRecords uint64 // bulk records received for req
	// The BulkEnd of req arrived while messages of the transfer were
	// missing and still being asked for again (Nack): it is judged again
	// as they arrive, and given up BulkRetry after endSince.
	endPending         bool
	endSeq, endRecords uint64
	endSince           time.Time
	changed            chan struct{}
	synced             atomic.Bool

	bulkMu      sync.Mutex
	bulkWake    chan struct{} // receive -> bulk goroutine (buffered, 1)
	bulkLatest  bulkJob       // newest request seen
	bulkNext    bulkJob       // request to serve next, if bulkPending
	bulkPending bool
	bulkServing bulkJob // if bulkActive
	bulkActive  bool
	bulkDone    bulkJob // last completed, if bulkDoneOK
	bulkDoneOK  bool
	bulkDoneEnd [2]uint64     // first sequence and records of bulkDone
	bulkGen     atomic.Uint64 // bumped for each new request: aborts the walk in progress
	bulkBuf     []byte        // bulk goroutine only

	open        *opener // receive goroutine only
	rbuf        []byte  // receive goroutine only
	nackPending bool    // receive goroutine: the window may hold messages to ask for again
	lastScan    time.Time
	nackRanges  []nackRange // receive goroutine: scratch, cap maxNackRanges
	nackBuf     []byte      // receive goroutine: scratch for a Nack

	stats     counters
	running   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// sentMessage is a message as sent, kept for a Nack.
type sentMessage struct {
	epoch, seq uint64
	b          []byte
}

// Retransmission.
const (
	// histBudget bounds the memory of the messages kept for Nacks: up to
	// windowSize of them (the receiver takes none older), fewer when
	// messages are large (2.8 MB at the default size).
	histBudget = 4 << 20
	// maxNacks is how many Nacks may name one missing message.
	maxNacks = 6
	// nackRetry is how long a receiver waits for messages it named in a
	// Nack before it names those still missing again.
	nackRetry = 25 * time.Millisecond
	// nackScan is how often, at most, an arriving message makes the
	// receiver look for holes due another Nack.
	nackScan = 5 * time.Millisecond
	// maxResend bounds the messages one Nack gets again.
	maxResend = 512
)

// bulkJob identifies a bulk request: the requester's epoch and its ID.
type bulkJob struct {
	node  uint32
	epoch uint64
	id    uint32
}

// New validates cfg and binds the socket. Run starts the protocol; Close
// (or the end of Run) releases the socket.
func New(cfg Config) (*Endpoint, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("flowsync: %w", err)
	}
	c := cfg.withDefaults()
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(c.Local))
	if err != nil {
		return nil, fmt.Errorf("flowsync: listen %v: %w", c.Local, err)
	}
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "flowsync")
	if got, err := setReadBuffer(conn, c.ReadBuffer); err != nil {
		log.Warn("cannot set the socket receive buffer", "bytes", c.ReadBuffer, "error", err)
	} else if got < c.ReadBuffer {
		log.Warn("socket receive buffer smaller than asked: bulk transfers may overflow it; raise net.core.rmem_max",
			"asked", c.ReadBuffer, "granted", got)
	}
	e := &Endpoint{
		cfg:      c,
		log:      log,
		conn:     conn,
		local:    unmap(conn.LocalAddr().(*net.UDPAddr).AddrPort()),
		maxLive:  (c.MaxMessageSize - HeaderSize - MACSize) / RecordSize,
		maxBulk:  (c.MaxMessageSize - HeaderSize - bulkPrefixSize - MACSize) / RecordSize,
		seal:     sealer{mac: newMAC(c.Key), node: c.Node, epoch: c.Epoch},
		peer:     c.Peer,
		live:     appendHeader(make([]byte, 0, c.MaxMessageSize), TypeUpdate, 0),
		ctl:      make([]byte, 0, HeaderSize+bulkEndSize+MACSize),
		req:      rand.Uint32(), // so that IDs of two runs hardly ever meet
		changed:  make(chan struct{}),
		bulkWake: make(chan struct{}, 1),
		bulkBuf:  make([]byte, 0, c.MaxMessageSize),
		open:     newOpener(c.Key, c.Node),
		rbuf:     make([]byte, 1<<16),

		nackRanges: make([]nackRange, 0, maxNackRanges),
		nackBuf:    make([]byte, 0, HeaderSize+nackPrefixSize+maxNackRanges*nackRangeSize+MACSize),
	}
	n := min(windowSize, histBudget/c.MaxMessageSize)
	e.hist, e.histBuf = make([]sentMessage, n), make([]byte, n*c.MaxMessageSize)
	for i := range e.hist {
		e.hist[i].b = e.histBuf[i*c.MaxMessageSize : i*c.MaxMessageSize : (i+1)*c.MaxMessageSize]
	}
	e.stats.epoch.Store(c.Epoch)
	return e, nil
}

// LocalAddr returns the address the socket is bound to.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.local }

// SetPeer changes where messages go from now on.
func (e *Endpoint) SetPeer(p netip.AddrPort) {
	e.sendMu.Lock()
	e.peer = p
	e.sendMu.Unlock()
}

// Close releases the socket, which ends Run. It is idempotent.
func (e *Endpoint) Close() error {
	e.closeOnce.Do(func() { e.closeErr = e.conn.Close() })
	return e.closeErr
}

// Run runs the protocol until ctx is done or Close is called, then closes
// the socket and returns nil. It asks the peer for a bulk resync at once.
// When ctx ends, records Send still holds are flushed first; after Close
// they are dropped. Run may be called only once.
func (e *Endpoint) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("flowsync: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		<-ctx.Done()
		e.Flush() // the last changes still go out
		e.Close()
	})
	wg.Go(func() { e.bulkLoop(ctx) })
	wg.Go(func() { e.timerLoop(ctx) })
	e.log.Info("sync started", "local", e.local, "peer", e.cfg.Peer, "node", e.cfg.Node, "epoch", e.cfg.Epoch)
	e.RequestBulk()
	e.receiveLoop()
	cancel()
	wg.Wait()
	return nil
}

// Send queues records for the peer, sealing and writing an Update each
// time one is full; Flush, or the timer within FlushInterval, sends the
// rest. It never waits for the peer: a write error is counted and the
// message dropped. It allocates nothing and makes one write system call
// per full message; it takes the send lock (shared with heartbeats and
// bulk transfers) once per message, so a long batch does not hold them
// back. The caller keeps recs.
func (e *Endpoint) Send(recs []Record) {
	for len(recs) > 0 {
		e.sendMu.Lock()
		for len(recs) > 0 && e.liveN < e.maxLive {
			e.live = recs[0].Append(e.live)
			e.liveN++
			recs = recs[1:]
		}
		if e.liveN == e.maxLive {
			e.flushLocked()
		}
		e.sendMu.Unlock()
	}
}

// Flush sends the records Send is holding, if any.
func (e *Endpoint) Flush() {
	e.sendMu.Lock()
	e.flushLocked()
	e.sendMu.Unlock()
}

func (e *Endpoint) flushLocked() {
	if e.liveN == 0 {
		return
	}
	e.live = e.seal.seal(e.live, e.liveN)
	e.writeLocked(e.live, e.liveN)
	e.live = appendHeader(e.live[:0], TypeUpdate, 0)
	e.liveN = 0
}

// writeLocked writes one sealed message of records records, and keeps
// it for a Nack.
func (e *Endpoint) writeLocked(b []byte, records int) {
	e.stats.seq.Store(e.seal.seq)
	h := &e.hist[e.seal.seq%uint64(len(e.hist))]
	h.epoch, h.seq, h.b = e.seal.epoch, e.seal.seq, append(h.b[:0], b...)
	if e.transmitLocked(b) {
		e.stats.msgsSent.Add(1)
		e.stats.recsSent.Add(uint64(records))
	}
}

// transmitLocked writes the datagram b to the peer; false if the socket
// refused it (counted and logged once a run of failures). The test drop
// hook's datagrams count as written.
func (e *Endpoint) transmitLocked(b []byte) bool {
	if e.drop != nil && e.drop(b) {
		return true
	}
	// Set per write: a deadline set ahead and reused would fail writes
	// that never blocked whenever this goroutine is descheduled past it.
	e.conn.SetWriteDeadline(time.Now().Add(e.cfg.SendTimeout))
	if _, err := e.conn.WriteToUDPAddrPort(b, e.peer); err != nil {
		e.stats.sendErrors.Add(1)
		if !e.sendFailing {
			e.sendFailing = true
			e.log.Warn("sync messages failing", "peer", e.peer, "error", err)
		}
		return false
	}
	if e.sendFailing {
		e.sendFailing = false
		e.log.Info("sync messages going out again", "peer", e.peer)
	}
	return true
}

// sendControlLocked seals and writes the control message in e.ctl.
func (e *Endpoint) sendControlLocked() {
	e.ctl = e.seal.seal(e.ctl, 0)
	e.writeLocked(e.ctl, 0)
}

func (e *Endpoint) sendBulkRequest(id uint32) {
	e.sendMu.Lock()
	e.ctl = appendBulkRequest(appendHeader(e.ctl[:0], TypeBulkRequest, 0), id)
	e.sendControlLocked()
	e.sendMu.Unlock()
	e.stats.bulkReqSent.Add(1)
}

func (e *Endpoint) sendBulkEnd(id uint32, first, records uint64) {
	e.sendMu.Lock()
	e.ctl = appendBulkEnd(appendHeader(e.ctl[:0], TypeBulkEnd, 0), id, first, records)
	e.sendControlLocked()
	e.sendMu.Unlock()
}

func (e *Endpoint) sendHeartbeat() {
	var fl uint8
	if e.synced.Load() {
		fl = flagSynced
	}
	ackEpoch, ackSeq := e.stats.peerEpoch.Load(), e.stats.peerSeq.Load()
	e.sendMu.Lock()
	e.ctl = appendHeartbeat(appendHeader(e.ctl[:0], TypeHeartbeat, fl), ackEpoch, ackSeq)
	e.sendControlLocked()
	e.sendMu.Unlock()
}

// timerLoop flushes partial Updates, sends heartbeats and repeats the
// bulk request until ctx is done.
func (e *Endpoint) timerLoop(ctx context.Context) {
	tick := min(e.cfg.FlushInterval, e.cfg.HeartbeatInterval, e.cfg.BulkRetry)
	t := time.NewTicker(tick)
	defer t.Stop()
	var nextHeartbeat time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			e.Flush()
			if !now.Before(nextHeartbeat) {
				e.sendHeartbeat()
				nextHeartbeat = now.Add(e.cfg.HeartbeatInterval)
			}
			e.retryBulk(now)
		}
	}
}

// receiveLoop reads and handles datagrams until the socket is closed.
func (e *Endpoint) receiveLoop() {
	failing := false
	for {
		n, _, err := e.conn.ReadFromUDPAddrPort(e.rbuf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			e.stats.recvErrors.Add(1)
			if !failing {
				failing = true
				e.log.Warn("sync socket read failing", "error", err)
			}
			time.Sleep(10 * time.Millisecond) // do not spin on a persistent error
			continue
		}
		failing = false
		e.receive(e.rbuf[:n], time.Now())
	}
}

// receive verifies one datagram and acts on it. Receive goroutine only;
// it allocates nothing on its own (the Importer may).
func (e *Endpoint) receive(b []byte, now time.Time) {
	h, why := e.open.check(b)
	if why != RejectNone {
		e.stats.rejected[why].Add(1)
		return
	}
	prevEpoch, prevLost := e.open.epoch, e.open.win.lost
	newEpoch, skipped, late := e.open.commit(h)
	c := &e.stats
	c.msgsRecv.Add(1)
	c.peerNode.Store(h.node)
	c.peerEpoch.Store(h.epoch)
	c.peerSeq.Store(e.open.win.top)
	c.lastRecv.Store(now.UnixNano())
	if skipped > 0 {
		c.gaps.Add(skipped)
	}
	if late {
		c.late.Add(1)
	}
	if newEpoch {
		if prevEpoch != 0 {
			e.log.Info("peer restarted", "node", h.node, "epoch", h.epoch, "previous", prevEpoch)
			e.restartBulk("peer restarted")
		} else {
			e.log.Info("peer seen", "node", h.node, "epoch", h.epoch)
		}
	}
	body := b[HeaderSize : len(b)-MACSize]
	switch h.typ {
	case TypeUpdate:
		if h.flags&flagBulk != 0 {
			e.bulkRecords(binary.BigEndian.Uint32(body[bRequest:]), binary.BigEndian.Uint64(body[bFirstSeq:]), uint64(h.count))
			body = body[bulkPrefixSize:]
		}
		c.recsRecv.Add(uint64(h.count))
		e.importRecords(body, late)
	case TypeBulkRequest:
		e.bulkRequested(bulkJob{node: h.node, epoch: h.epoch, id: binary.BigEndian.Uint32(body[bRequest:])})
	case TypeBulkEnd:
		e.bulkEnded(h.seq, binary.BigEndian.Uint32(body[bRequest:]),
			binary.BigEndian.Uint64(body[bFirstSeq:]), binary.BigEndian.Uint64(body[bRecords:]), now)
	case TypeHeartbeat:
		if !late { // a resent one is old news; it only fills the window
			e.heartbeat(h, binary.BigEndian.Uint64(body[bAckEpoch:]), binary.BigEndian.Uint64(body[bAckSeq:]))
		}
	case TypeNack:
		if !late { // a resent one was answered, or superseded
			e.resend(binary.BigEndian.Uint64(body[bNackEpoch:]), body[nackPrefixSize:])
		}
	}
	if e.open.win.lost != prevLost {
		e.checkLoss()
	}
	if late {
		e.recheckBulkEnd(now)
	}
	if skipped > 0 || e.nackPending && now.Sub(e.lastScan) >= nackScan {
		e.sendNack(now)
	}
}

// sendNack asks the peer for the messages missing in the window that are
// due a Nack: new holes at once, the others nackRetry after the last
// Nack that named them, maxNacks times at most. Receive goroutine.
func (e *Endpoint) sendNack(now time.Time) {
	e.lastScan = now
	rs, later := e.open.win.missing(e.nackRanges[:0], now.UnixNano(), int64(nackRetry), maxNacks)
	e.nackPending = later
	if len(rs) == 0 {
		return
	}
	e.sendMu.Lock()
	b := appendNack(appendHeader(e.nackBuf[:0], TypeNack, 0), e.open.epoch, rs)
	b = e.seal.seal(b, len(rs))
	e.writeLocked(b, 0)
	e.nackBuf = b
	e.sendMu.Unlock()
	e.stats.nacksSent.Add(1)
}

// resend sends again, byte for byte, the messages of our epoch that the
// ranges of a Nack name, those we still hold; at most maxResend of them.
// Receive goroutine.
func (e *Endpoint) resend(epoch uint64, ranges []byte) {
	e.stats.nacksRecv.Add(1)
	e.sendMu.Lock()
	defer e.sendMu.Unlock()
	if epoch != e.seal.epoch {
		return // about an earlier run of ours
	}
	budget := maxResend
	for ; len(ranges) > 0 && budget > 0; ranges = ranges[nackRangeSize:] {
		first, n := binary.BigEndian.Uint64(ranges[rFirst:]), uint64(binary.BigEndian.Uint32(ranges[rNumber:]))
		for q := first; q < first+n && budget > 0; q++ {
			h := &e.hist[q%uint64(len(e.hist))]
			if h.seq != q || h.epoch != epoch {
				e.stats.resendMisses.Add(1)
				continue
			}
			budget--
			if e.transmitLocked(h.b) {
				e.stats.resent.Add(1)
			}
		}
	}
}

// importRecords hands the records of an Update body (check has decoded
// each once already) to the Importer; those of a late message to its
// ImportLate, if it has one.
func (e *Endpoint) importRecords(body []byte, late bool) {
	imp := e.cfg.Importer
	if imp == nil {
		return
	}
	importFn := imp.Import
	if li, ok := imp.(LateImporter); ok && late {
		importFn = li.ImportLate
	}
	var r Record
	for i := 0; i+RecordSize <= len(body); i += RecordSize {
		if r.Decode(body[i:]) != nil {
			continue // cannot happen: check decoded it
		}
		if err := importFn(r); err != nil {
			e.stats.importErrors.Add(1)
		} else {
			e.stats.imported.Add(1)
		}
	}
}

// heartbeat takes in the peer's acknowledgement. An acknowledged epoch of
// ours larger than our own means the peer saw a previous run of ours with
// a later clock (ours went back across the restart) and rejects us as
// stale: move past it.
func (e *Endpoint) heartbeat(h header, ackEpoch, ackSeq uint64) {
	c := &e.stats
	c.peerAckEpoch.Store(ackEpoch)
	c.peerAckSeq.Store(ackSeq)
	c.peerSynced.Store(h.flags&flagSynced != 0)
	if ackEpoch <= c.epoch.Load() || ackEpoch == math.MaxUint64 {
		return // nothing to move past, or nowhere to move
	}
	e.sendMu.Lock()
	if ackEpoch > e.seal.epoch {
		old := e.seal.epoch
		e.seal.epoch = max(uint64(time.Now().UnixNano()), ackEpoch+1)
		e.seal.seq = 0
		c.epoch.Store(e.seal.epoch)
		c.epochBumps.Add(1)
		e.log.Warn("peer knows a later epoch of ours: clock went back? moving past it",
			"epoch", old, "peer_saw", ackEpoch, "new", e.seal.epoch)
	}
	e.sendMu.Unlock()
}

func unmap(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }
