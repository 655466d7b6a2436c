// An open-loop HTTP load generator for the online server benchmark (loadtest/server-bench.ts
// --loader go): a compiled sender costs a small share of the CPU a Node sender needs at 5,000
// requests/s, and its latencies are not delayed by a JavaScript event loop, so what it reports on
// a shared 2-core machine is closer to what the server does. Stdlib only.
//
//	loadgen -url http://127.0.0.1:8080/get-online-features -bodies bodies-1.json -rate 5000 \
//	  -duration 15 -conns 8 -header 'authorization: Bearer <token>'
//
// Open loop: request i is due at start + i/rate whatever came back before it, and its latency is
// counted from that due time, also while it waits for a free connection or for the scheduler: a
// stalled server (or sender) shows in the tail instead of silently lowering the rate (no
// coordinated omission). -rate 0 runs closed loops instead, each connection sending its next
// request as soon as the last one is answered (saturation). Prints one JSON object.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type headerList []string

func (h *headerList) String() string     { return strings.Join(*h, ", ") }
func (h *headerList) Set(v string) error { *h = append(*h, v); return nil }

// figures matches LoadFigures in server-bench.ts (milliseconds, requests per second).
type figures struct {
	Requests int     `json:"requests"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50"`
	P90      float64 `json:"p90"`
	P99      float64 `json:"p99"`
	P999     float64 `json:"p999"`
	Max      float64 `json:"max"`
	Non2xx   int64   `json:"non2xx"`
	Errors   int64   `json:"errors"`
	Timeouts int     `json:"timeouts"`
	// The sender's own delay: how late the scheduler handed requests over after their due time
	// (p99 and max, ms). Large values mean the sender, not the server, made the tail.
	SendLagP99 float64 `json:"sendLagP99"`
	SendLagMax float64 `json:"sendLagMax"`
	// Due time to leaving on a connection (p99 and max, ms): includes waiting for a free
	// connection, i.e. for the server to answer the requests before it.
	QueueP99 float64 `json:"queueP99"`
	QueueMax float64 `json:"queueMax"`
	// CPU seconds (user + system) this process used: the load generator's share of the machine.
	LoaderCPU float64 `json:"loaderCpu"`
}

type job struct {
	index int
	due   time.Time
}

func main() {
	target := flag.String("url", "", "full URL to POST to")
	bodiesFile := flag.String("bodies", "", "JSON array of request body strings, sent round-robin")
	rate := flag.Float64("rate", 0, "requests per second, evenly spaced; 0 = closed loop on every connection")
	duration := flag.Float64("duration", 10, "seconds of load")
	conns := flag.Int("conns", 8, "keep-alive connections")
	grace := flag.Float64("grace", 30, "seconds to wait for answers after the last send; what is unanswered then counts as a timeout")
	var headers headerList
	flag.Var(&headers, "header", "'name: value', repeatable (content-type: application/json is always sent)")
	// Two Ps: the open loop's dispatcher sleeps in nanosleep on its own thread (preciseSleep),
	// holding one, and the connections' goroutines run on the other. More idle Ps would make Go
	// spin threads looking for work after every wake-up, CPU taken from the server.
	procs := flag.Int("procs", 2, "GOMAXPROCS")
	flag.Parse()
	runtime.GOMAXPROCS(*procs)
	if *target == "" || *bodiesFile == "" || *conns < 1 || *duration <= 0 || *rate < 0 {
		fail("-url, -bodies, -duration > 0, -conns >= 1 and -rate >= 0 are required")
	}
	u, err := url.Parse(*target)
	if err != nil || u.Scheme != "http" {
		fail(fmt.Sprintf("-url %q: only plain http://host:port/path URLs are supported", *target))
	}
	requests := buildRequests(u, *bodiesFile, headers)

	var res *figures
	if *rate > 0 {
		res = openLoop(u.Host, requests, *rate, *duration, *conns, *grace)
	} else {
		res = closedLoop(u.Host, requests, *duration, *conns)
	}
	var usage syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &usage) == nil {
		res.LoaderCPU = seconds(usage.Utime) + seconds(usage.Stime)
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "loadgen:", msg)
	os.Exit(2)
}

func seconds(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// buildRequests renders every body into the complete request bytes once, so sending is one write.
func buildRequests(u *url.URL, file string, headers headerList) [][]byte {
	raw, err := os.ReadFile(file)
	if err != nil {
		fail(err.Error())
	}
	var bodies []string
	if err := json.Unmarshal(raw, &bodies); err != nil || len(bodies) == 0 {
		fail(fmt.Sprintf("-bodies %s: want a non-empty JSON array of strings (%v)", file, err))
	}
	var head strings.Builder
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nhost: %s\r\ncontent-type: application/json\r\n", u.RequestURI(), u.Host)
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		if !ok {
			fail(fmt.Sprintf("-header %q: want 'name: value'", h))
		}
		fmt.Fprintf(&head, "%s: %s\r\n", strings.TrimSpace(name), strings.TrimSpace(value))
	}
	out := make([][]byte, len(bodies))
	for i, b := range bodies {
		out[i] = fmt.Appendf(nil, "%scontent-length: %d\r\n\r\n%s", head.String(), len(b), b)
	}
	return out
}

// conn is one keep-alive connection, redialled after an error.
type conn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
}

func (k *conn) roundTrip(req []byte) (int, error) {
	if k.c == nil {
		if err := k.dial(); err != nil {
			return 0, err
		}
	}
	if _, err := k.c.Write(req); err != nil {
		k.close()
		return 0, err
	}
	status, err := k.readResponse()
	if err != nil {
		k.close()
	}
	return status, err
}

// readResponse reads one HTTP/1.1 response and discards its body. Hand-rolled instead of
// http.ReadResponse, which builds a header map and body reader per response: at 5,000 requests/s
// that garbage and CPU come out of the server's share of the machine.
func (k *conn) readResponse() (int, error) {
	line, err := k.r.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, fmt.Errorf("not an HTTP/1.x status line: %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("status line %q: %w", line, err)
	}
	length, chunked, closing := -1, false, false
	for {
		line, err = k.r.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 { // the blank line ending the head
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "content-length"):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, fmt.Errorf("content-length %q: %w", value, err)
			}
		case asciiEqualFold(name, "transfer-encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "connection"):
			closing = asciiEqualFold(value, "close")
		}
	}
	switch {
	case chunked:
		err = k.skipChunks()
	case length >= 0:
		_, err = k.r.Discard(length)
	default:
		return 0, errors.New("response without content-length or chunked encoding")
	}
	if err == nil && closing {
		k.close()
	}
	return status, err
}

func (k *conn) skipChunks() error {
	for {
		line, err := k.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(size), 16, 64)
		if err != nil {
			return fmt.Errorf("chunk size %q: %w", line, err)
		}
		if n == 0 { // the last chunk; these servers send no trailers
			_, err = k.r.Discard(2)
			return err
		}
		if _, err = k.r.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

func (k *conn) dial() error {
	c, err := net.Dial("tcp", k.addr)
	if err != nil {
		return err
	}
	// Go sets TCP_NODELAY by default; said here because a delayed small write would be charged
	// to the server.
	_ = c.(*net.TCPConn).SetNoDelay(true)
	k.c, k.r = c, bufio.NewReaderSize(c, 64<<10)
	return nil
}

func (k *conn) close() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

func openLoop(addr string, requests [][]byte, rate, duration float64, conns int, grace float64) *figures {
	total := int(rate*duration + 0.5)
	interval := time.Duration(float64(time.Second) / rate)
	// One slot per request, written by whichever connection served it (distinct indices: no lock).
	latency := make([]float64, total)
	lag := make([]float64, total)
	queued := make([]float64, total)
	answered := make([]bool, total)
	var non2xx, errs atomic.Int64
	// Buffered for the whole run: the scheduler never blocks on a busy pool, requests queue here.
	jobs := make(chan job, total)
	pool := make([]*conn, conns)
	for i := range pool {
		pool[i] = &conn{addr: addr}
		if err := pool[i].dial(); err != nil {
			fail(fmt.Sprintf("connect %s: %v", addr, err))
		}
	}
	var wg sync.WaitGroup
	for _, k := range pool {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				queued[j.index] = msSince(j.due)
				status, err := k.roundTrip(requests[j.index%len(requests)])
				if succeeded(status, err, &errs, &non2xx) {
					latency[j.index] = msSince(j.due)
					answered[j.index] = true
				}
			}
		}()
	}
	// The dispatcher keeps its own thread, whose sleeps are precise (see preciseSleep).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	setTimerSlack()
	start := time.Now().Add(10 * time.Millisecond)
	for i := 0; i < total; i++ {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			preciseSleep(wait)
		}
		lag[i] = msSince(due)
		jobs <- job{index: i, due: due}
	}
	close(jobs)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Duration(grace * float64(time.Second))):
		// The answers still missing count as timeouts; their slots may still be written, so the
		// figures below read only what had been answered.
	}
	elapsed := time.Since(start).Seconds()
	var got []float64
	for i := 0; i < total; i++ {
		if answered[i] {
			got = append(got, latency[i])
		}
	}
	f := summarize(got, elapsed)
	f.Requests = total
	f.Non2xx, f.Errors = non2xx.Load(), errs.Load()
	f.Timeouts = total - len(got) - int(f.Non2xx) - int(f.Errors)
	slices.Sort(lag)
	f.SendLagP99, f.SendLagMax = quantile(lag, 0.99), quantile(lag, 1)
	slices.Sort(queued)
	f.QueueP99, f.QueueMax = quantile(queued, 0.99), quantile(queued, 1)
	return f
}

func closedLoop(addr string, requests [][]byte, duration float64, conns int) *figures {
	deadline := time.Now().Add(time.Duration(duration * float64(time.Second)))
	per := make([][]float64, conns)
	var non2xx, errs atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		k := &conn{addr: addr}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				n := next.Add(1) - 1
				sent := time.Now()
				status, err := k.roundTrip(requests[int(n)%len(requests)])
				if succeeded(status, err, &errs, &non2xx) {
					per[i] = append(per[i], msSince(sent))
				}
			}
			k.close()
		}()
	}
	wg.Wait()
	var all []float64
	for _, p := range per {
		all = append(all, p...)
	}
	f := summarize(all, time.Since(start).Seconds())
	f.Requests = int(next.Load())
	f.Non2xx, f.Errors = non2xx.Load(), errs.Load()
	return f
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Nanoseconds()) / 1e6 }

// succeeded counts a failed exchange (an error, or a status outside 2xx) and reports a good one.
func succeeded(status int, err error, errs, non2xx *atomic.Int64) bool {
	switch {
	case err != nil:
		errs.Add(1)
	case status < 200 || status > 299:
		non2xx.Add(1)
	default:
		return true
	}
	return false
}

func summarize(latencies []float64, elapsed float64) *figures {
	slices.Sort(latencies)
	return &figures{
		Seconds: elapsed,
		RPS:     float64(len(latencies)) / elapsed,
		P50:     quantile(latencies, 0.5),
		P90:     quantile(latencies, 0.9),
		P99:     quantile(latencies, 0.99),
		P999:    quantile(latencies, 0.999),
		Max:     quantile(latencies, 1),
	}
}

// quantile of sorted values by nearest rank, the same rule as server-bench.ts: the smallest value
// with at least q of the samples at or below it (at floor(q * n), one rank high, the p99 of 100
// samples was their maximum). JSON has no NaN, so an empty set gives -1.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return -1
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// setTimerSlack sets this thread's timer slack to 1 ns (prctl PR_SET_TIMERSLACK): Linux lets a
// sleep overrun by the slack, 50 µs by default, to batch wake-ups.
func setTimerSlack() {
	const prSetTimerslack = 29
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1, 0)
}

// preciseSleep sleeps d in nanosleep on the calling (locked) thread. time.Sleep wakes up through
// the runtime's network poller, whose epoll timeout is whole milliseconds: measured here, a 200 µs
// sleep overran by 556 µs at the median and 1.6 ms at p99, which an open loop counts as latency
// of the server. nanosleep with 1 ns of slack overran by 28 µs / 152 µs, without spinning.
func preciseSleep(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}
