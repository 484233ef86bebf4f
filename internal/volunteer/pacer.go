package volunteer

import (
	"context"
	"sync"
	"time"

	"github.com/apt-p2p/apt-p2p/internal/clock"
)

// pacer is the preheat bandwidth limit: a token bucket shared by the
// volunteer's downloads, refilled continuously. A write takes its bytes at
// once (the bucket may go into debt) and waits until the debt is repaid, so
// the long-run rate is exact whatever the write sizes (512 KiB pieces, or a
// mirror stream's chunks).
type pacer struct {
	clk   clock.Clock
	rate  float64 // bytes/s
	burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newPacer(clk clock.Clock, rate int64) *pacer {
	// A quarter second of data: bursts stay short, and one piece never
	// waits longer than it takes at the rate.
	burst := max(float64(rate)/4, 64<<10)
	return &pacer{clk: clk, rate: float64(rate), burst: burst, tokens: burst, last: clk.Now()}
}

// wait takes n bytes and returns when they may be written, or ctx's error.
func (p *pacer) wait(ctx context.Context, n int) error {
	p.mu.Lock()
	now := p.clk.Now()
	if d := now.Sub(p.last); d > 0 {
		p.tokens = min(p.burst, p.tokens+d.Seconds()*p.rate)
		p.last = now
	}
	p.tokens -= float64(n)
	debt := -p.tokens
	p.mu.Unlock()
	if debt <= 0 {
		return ctx.Err()
	}
	if !clock.Sleep(ctx, p.clk, time.Duration(debt/p.rate*float64(time.Second))) {
		return ctx.Err()
	}
	return nil
}
