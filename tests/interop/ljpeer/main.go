// ljpeer is sluice's reference Lumberjack v2 peer for interop tests.
// It wraps Elastic's own github.com/elastic/go-lumber (the library Beats
// uses) so sluice's shipper and aggregator can be tested against the real
// thing.
//
//	ljpeer server -listen 127.0.0.1:0 -out FILE [-keepalive 3s] [-v1] [-ack-delay D] [-raw]
//	ljpeer client -addr HOST:PORT -in FILE -batch N -compress LEVEL -pipeline P [-timeout 30s]
//
// See README.md next to this file for the exact contract.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	v2client "github.com/elastic/go-lumber/client/v2"
	"github.com/elastic/go-lumber/lj"
	lumberlog "github.com/elastic/go-lumber/log"
	"github.com/elastic/go-lumber/server"
	v2server "github.com/elastic/go-lumber/server/v2"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage:
  ljpeer server -listen 127.0.0.1:0 -out FILE [-keepalive 3s] [-v1] [-ack-delay 0] [-raw] [-quiet]
  ljpeer client -addr HOST:PORT -in FILE -batch N -compress LEVEL -pipeline P [-timeout 30s] [-quiet]
`)
	os.Exit(2)
}

func main() {
	stdlog.SetFlags(stdlog.LstdFlags | stdlog.Lmicroseconds)
	stdlog.SetPrefix("ljpeer: ")
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = runServer(os.Args[2:])
	case "client":
		err = runClient(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "ljpeer: unknown mode %q\n", os.Args[1])
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ljpeer %s: error: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// quietLogger silences go-lumber's internal logging (it goes to stderr by
// default, which is usually what a test wants for post-mortems).
type quietLogger struct{}

func (quietLogger) Printf(string, ...interface{}) {}
func (quietLogger) Println(...interface{})        {}
func (quietLogger) Print(...interface{})          {}

// ---------------------------------------------------------------- server

type batchServer interface {
	Close() error
}

func runServer(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (port 0 = OS-chosen)")
	out := fs.String("out", "", "file to append received events to, one compact JSON line each (required)")
	keepalive := fs.Duration("keepalive", 3*time.Second, "interval of ACK-0 keepalives while a batch is un-ACKed (0 disables)")
	v1 := fs.Bool("v1", false, "also accept Lumberjack v1 (muxing go-lumber server) besides v2")
	ackDelay := fs.Duration("ack-delay", 0, "delay each batch's ACK by this long (after the events are written)")
	timeout := fs.Duration("timeout", 30*time.Second, "go-lumber server network timeout (time to read a batch after its W frame, ACK writes)")
	maxWindow := fs.Uint("max-window", 10000, "go-lumber MaxWindowSize: max events per W frame (0 = no limit)")
	raw := fs.Bool("raw", false, "write each event's JSON as received (compacted, key order kept) instead of decoding and re-encoding it")
	quiet := fs.Bool("quiet", false, "silence go-lumber's internal log on stderr")
	tlsCert := fs.String("tls-cert", "", "serve TLS with this PEM certificate (needs -tls-key)")
	tlsKey := fs.String("tls-key", "", "PEM key of -tls-cert")
	tlsCA := fs.String("tls-client-ca", "", "require client certificates signed by this PEM CA (mutual TLS)")
	_ = fs.Parse(args)
	if *out == "" {
		return errors.New("-out FILE is required")
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *quiet {
		lumberlog.Logger = quietLogger{}
	}

	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()

	// Decoder: the go-lumber default is json.Unmarshal into interface{}. We
	// use UseNumber so integers beyond 2^53 survive the round trip, or keep
	// the raw bytes with -raw. The reader reuses its buffer, so copy.
	decoder := func(b []byte, v interface{}) error {
		p, ok := v.(*interface{})
		if !ok {
			return json.Unmarshal(b, v)
		}
		if *raw {
			var c bytes.Buffer
			if err := json.Compact(&c, b); err != nil {
				return err
			}
			*p = json.RawMessage(c.Bytes())
			return nil
		}
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		var ev interface{}
		if err := d.Decode(&ev); err != nil {
			return err
		}
		if _, err := d.Token(); err != io.EOF {
			return errors.New("trailing data after JSON value")
		}
		*p = ev
		return nil
	}

	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			l.Close()
			return err
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if *tlsCA != "" {
			pem, err := os.ReadFile(*tlsCA)
			if err != nil {
				l.Close()
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				l.Close()
				return errors.New("no certificate in -tls-client-ca")
			}
			cfg.ClientCAs = pool
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
		l = tls.NewListener(l, cfg)
	}

	// Own channel: go-lumber never closes a caller-provided channel, which
	// avoids a send-on-closed-channel race in its Close().
	ch := make(chan *lj.Batch, 128)
	var srv batchServer
	if *v1 {
		srv, err = server.NewWithListener(l,
			server.V1(true), server.V2(true),
			server.Keepalive(*keepalive),
			server.Timeout(*timeout),
			server.MaxWindowSize(uint32(*maxWindow)),
			server.JSONDecoder(decoder),
			server.Channel(ch))
	} else {
		srv, err = v2server.NewWithListener(l,
			v2server.Keepalive(*keepalive),
			v2server.Timeout(*timeout),
			v2server.MaxWindowSize(uint32(*maxWindow)),
			v2server.JSONDecoder(decoder),
			v2server.Channel(ch))
	}
	if err != nil {
		l.Close()
		return err
	}

	// First stdout line: the bound address (os.Stdout is unbuffered).
	if _, err := fmt.Fprintf(os.Stdout, "listening %s\n", l.Addr().String()); err != nil {
		srv.Close()
		return err
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	var pending sync.WaitGroup // delayed ACK timers
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	batches, events := 0, 0
	var loopErr error

loop:
	for {
		select {
		case s := <-sigs:
			stdlog.Printf("server: got %v, stopping (%d batches, %d events written)", s, batches, events)
			break loop
		case b := <-ch:
			buf.Reset()
			for _, ev := range b.Events {
				if err := enc.Encode(ev); err != nil { // Encode appends '\n'
					loopErr = fmt.Errorf("encoding event: %w", err)
					break loop
				}
			}
			if _, err := f.Write(buf.Bytes()); err != nil {
				loopErr = fmt.Errorf("writing %s: %w", *out, err)
				break loop
			}
			if err := f.Sync(); err != nil {
				loopErr = fmt.Errorf("fsync %s: %w", *out, err)
				break loop
			}
			batches++
			events += len(b.Events)
			if *ackDelay > 0 {
				pending.Add(1)
				time.AfterFunc(*ackDelay, func() { b.ACK(); pending.Done() })
			} else {
				b.ACK()
			}
		}
	}
	signal.Stop(sigs)
	srv.Close()
	pending.Wait()
	if err := f.Close(); err != nil && loopErr == nil {
		loopErr = err
	}
	return loopErr
}

// ---------------------------------------------------------------- client

func readEvents(path string) ([]interface{}, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var evs []interface{}
	for lineNo := 1; ; lineNo++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			d := json.NewDecoder(bytes.NewReader(line))
			d.UseNumber()
			var m map[string]interface{}
			if derr := d.Decode(&m); derr != nil {
				return nil, fmt.Errorf("%s:%d: %v", path, lineNo, derr)
			}
			if m == nil {
				return nil, fmt.Errorf("%s:%d: not a JSON object", path, lineNo)
			}
			if _, terr := d.Token(); terr != io.EOF {
				return nil, fmt.Errorf("%s:%d: trailing data after JSON object", path, lineNo)
			}
			evs = append(evs, m)
		}
		if err == io.EOF {
			return evs, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// encodeJSON is like Beats' codec (escape_html: false), without the newline.
func encodeJSON(v interface{}) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

func runClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "server HOST:PORT (required)")
	in := fs.String("in", "", "input file: one JSON object per line = one event (required)")
	batch := fs.Int("batch", 2048, "events per window (W frame)")
	compress := fs.Int("compress", 3, "zlib compression level 0-9 (0 = bare J frames)")
	pipeline := fs.Int("pipeline", 0, "windows in flight; <= 1 uses SyncClient, P > 1 uses AsyncClient with queue P-1 (as Beats does)")
	timeout := fs.Duration("timeout", 30*time.Second, "go-lumber timeout: dial, each write and each ACK read; also bounds the wait for the last ACK")
	quiet := fs.Bool("quiet", false, "silence go-lumber's internal log on stderr")
	_ = fs.Parse(args)
	if *addr == "" || *in == "" {
		return errors.New("-addr and -in are required")
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	if *batch < 1 {
		return errors.New("-batch must be >= 1")
	}
	if *quiet {
		lumberlog.Logger = quietLogger{}
	}

	evs, err := readEvents(*in)
	if err != nil {
		return err
	}
	var windows [][]interface{}
	for i := 0; i < len(evs); i += *batch {
		j := i + *batch
		if j > len(evs) {
			j = len(evs)
		}
		windows = append(windows, evs[i:j])
	}

	opts := []v2client.Option{
		v2client.CompressionLevel(*compress),
		v2client.Timeout(*timeout),
		v2client.JSONEncoder(encodeJSON),
	}

	acked := 0
	if *pipeline <= 1 {
		cl, err := v2client.SyncDial(*addr, opts...)
		if err != nil {
			return fmt.Errorf("dial %s: %w", *addr, err)
		}
		defer cl.Close()
		for i, w := range windows {
			n, err := cl.Send(w)
			acked += n
			if err != nil {
				fmt.Printf("acked %d\n", acked)
				return fmt.Errorf("window %d (%d events): %d ACKed: %w", i, len(w), n, err)
			}
			if n != len(w) {
				fmt.Printf("acked %d\n", acked)
				return fmt.Errorf("window %d: %d of %d events ACKed", i, n, len(w))
			}
		}
		fmt.Printf("acked %d\n", acked)
		return nil
	}

	cl, err := v2client.AsyncDial(*addr, *pipeline-1, opts...)
	if err != nil {
		return fmt.Errorf("dial %s: %w", *addr, err)
	}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	fail := func(e error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = e
		}
		mu.Unlock()
	}
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return firstErr != nil }

	for i, w := range windows {
		if failed() {
			break
		}
		i, want := i, len(w)
		wg.Add(1)
		cb := func(seq uint32, err error) {
			defer wg.Done()
			mu.Lock()
			acked += int(seq)
			mu.Unlock()
			if err != nil {
				fail(fmt.Errorf("window %d (%d events): %d ACKed: %w", i, want, seq, err))
			} else if int(seq) != want {
				fail(fmt.Errorf("window %d: %d of %d events ACKed", i, seq, want))
			}
		}
		if err := cl.Send(cb, w); err != nil {
			fail(fmt.Errorf("send window %d: %w", i, err))
			break
		}
	}

	// Wait for every callback. Each ACK read is bounded by -timeout inside
	// go-lumber; this outer bound only guards against a library hang.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Duration(*pipeline)*(*timeout) + 5*time.Second):
		fail(fmt.Errorf("timed out waiting for ACKs"))
	}
	// Close only after all ACKs arrived: Close cancels in-flight windows.
	cl.Close()

	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("acked %d\n", acked)
	if firstErr != nil {
		return firstErr
	}
	if acked != len(evs) {
		return fmt.Errorf("only %d of %d events ACKed", acked, len(evs))
	}
	return nil
}
