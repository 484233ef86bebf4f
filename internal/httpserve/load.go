package httpserve

import (
	"math"
	"strconv"
	"sync"
	"time"
)

// The load header: see the package doc, "The load header".
var hdrLoad = []byte("X-Apt-P2P-Load")

// HeaderLoad is the name of the load header, for downloaders.
const HeaderLoad = "X-Apt-P2P-Load"

// loadPiece is the size of the piece a downloader asks for (512 KiB), used to
// turn a rate into the Retry-After of a 503.
const loadPiece = 512 << 10

// peakHalfLife is how fast the remembered highest upload rate of a daemon
// without UPLOAD_LIMIT fades, so a link that got slower is not overstated for
// long.
const peakHalfLife = 10 * time.Minute

// rateWindow is the time constant of the upload-rate average.
const rateWindow = time.Second

// loadMeter measures the upload rate from the handler's sent-bytes counter.
type loadMeter struct {
	mu       sync.Mutex
	last     time.Time
	lastSent int64
	rate     float64 // bytes/s, exponentially weighted over rateWindow
	peak     float64 // highest rate lately, fading with peakHalfLife
}

// sample folds the bytes sent since the last call into the rate and
// returns the rate and the peak.
func (m *loadMeter) sample(now time.Time, sent int64) (rate, peak float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last.IsZero() {
		m.last, m.lastSent = now, sent
		return 0, 0
	}
	dt := now.Sub(m.last)
	if dt >= 50*time.Millisecond {
		inst := float64(sent-m.lastSent) / dt.Seconds()
		w := 1 - math.Exp(-dt.Seconds()/rateWindow.Seconds())
		m.rate += w * (inst - m.rate)
		m.peak *= math.Exp2(-dt.Seconds() / peakHalfLife.Seconds())
		m.peak = max(m.peak, m.rate)
		m.last, m.lastSent = now, sent
	}
	return m.rate, m.peak
}

// Load is what the load header says, as a downloader reads it.
type Load struct {
	Uploads, MaxUploads int   // running now (the response itself included), cap (0: none)
	Rate                int64 // bytes/s sent lately
	Capacity            int64 // bytes/s offered (0: unknown)
	PerPeer             int64 // bytes/s per downloader (0: no limit)
}

// AppendLoad appends the header value for l.
func AppendLoad(dst []byte, l Load) []byte {
	dst = append(dst, "uploads="...)
	dst = strconv.AppendInt(dst, int64(l.Uploads), 10)
	dst = append(dst, '/')
	dst = strconv.AppendInt(dst, int64(l.MaxUploads), 10)
	dst = append(dst, "; rate="...)
	dst = strconv.AppendInt(dst, l.Rate, 10)
	if l.Capacity > 0 {
		dst = append(dst, "; capacity="...)
		dst = strconv.AppendInt(dst, l.Capacity, 10)
	}
	if l.PerPeer > 0 {
		dst = append(dst, "; peer="...)
		dst = strconv.AppendInt(dst, l.PerPeer, 10)
	}
	return dst
}

// maxLoadHeader bounds the header a downloader parses.
const maxLoadHeader = 256

// ParseLoad reads a load header value. Unknown fields are skipped; ok is
// false when the value is too long or a known field is malformed (the
// downloader then ignores the header, as for a peer that sends none).
func ParseLoad(v []byte) (l Load, ok bool) {
	if len(v) == 0 || len(v) > maxLoadHeader {
		return Load{}, false
	}
	for len(v) > 0 {
		var f []byte
		if i := indexByte(v, ';'); i >= 0 {
			f, v = v[:i], v[i+1:]
		} else {
			f, v = v, nil
		}
		f = trimSpaces(f)
		eq := indexByte(f, '=')
		if eq < 0 {
			continue
		}
		key, val := f[:eq], f[eq+1:]
		switch string(key) { // no allocation: the compiler compares in place
		case "uploads":
			slash := indexByte(val, '/')
			if slash < 0 {
				return Load{}, false
			}
			a, ok1 := parseUint(val[:slash])
			b, ok2 := parseUint(val[slash+1:])
			if !ok1 || !ok2 || a > 1<<20 || b > 1<<20 {
				return Load{}, false
			}
			l.Uploads, l.MaxUploads = int(a), int(b)
		case "rate", "capacity", "peer":
			n, ok := parseUint(val)
			if !ok {
				return Load{}, false
			}
			switch key[0] {
			case 'r':
				l.Rate = n
			case 'c':
				l.Capacity = n
			default:
				l.PerPeer = n
			}
		}
	}
	return l, true
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

func trimSpaces(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// parseUint parses 1 to 18 decimal digits.
func parseUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// load is the handler's load now; active counts the running uploads.
func (h *PeerHandler) load(now time.Time, active int) Load {
	rate, peak := h.meter.sample(now, h.sent.Load())
	lim := h.t.Limits()
	l := Load{Uploads: active, MaxUploads: lim.MaxUploads, Rate: int64(rate), PerPeer: lim.PerPeerBytesPerSec}
	capacity := float64(lim.GlobalBytesPerSec)
	if capacity <= 0 {
		capacity = peak
	}
	l.Capacity = int64(capacity * h.weight)
	return l
}

// retryAfter is the Retry-After of a 503: with an UPLOAD_LIMIT, about the
// time until one of the running uploads has sent a piece at it, in whole
// seconds between 1 and retryAfterSeconds; without one, retryAfterSeconds.
func (h *PeerHandler) retryAfter(active int) int64 {
	limit := h.t.Limits().GlobalBytesPerSec
	if limit <= 0 || active <= 0 {
		return retryAfterSeconds
	}
	s := math.Ceil(float64(loadPiece) * float64(active) / float64(limit))
	return int64(min(max(s, 1), retryAfterSeconds))
}
