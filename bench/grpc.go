package bench

import (
	"context"
	"fmt"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// The gRPC baseline: a unary Echo method whose messages are raw bytes (a codec of its own, so no generated
// code), served by `kouple bench-grpc ADDR` in a child process and called from the bench process.

const grpcEchoMethod = "/kouple.bench.Echo/Echo"

type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "kouple-raw" }

var echoDesc = grpc.ServiceDesc{
	ServiceName: "kouple.bench.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var in []byte
			if err := dec(&in); err != nil {
				return nil, err
			}
			return &in, nil
		},
	}},
}

// ServeGRPC serves the echo on addr until ctx ends.
func ServeGRPC(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s := grpc.NewServer(grpc.ForceServerCodec(rawCodec{}))
	s.RegisterService(&echoDesc, struct{}{})
	stop := context.AfterFunc(ctx, s.Stop)
	defer stop()
	return s.Serve(l)
}

// startGRPC runs the echo server as a child process and answers a function making one call of size bytes.
func (r *runner) startGRPC(ctx context.Context) (func(size int) error, func(), error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, nil, err
	}
	p, err := startProc(ctx, r.cfg.Exe, []string{"bench-grpc", addr}, nil)
	if err != nil {
		return nil, nil, err
	}
	r.cleanup(p.stop)
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		p.stop()
		return nil, nil, err
	}
	stop := func() { conn.Close(); p.stop() }
	payloads := map[int][]byte{}
	call := func(size int) error {
		in, ok := payloads[size]
		if !ok {
			in = make([]byte, size)
			payloads[size] = in
		}
		var out []byte
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := conn.Invoke(ctx, grpcEchoMethod, &in, &out); err != nil {
			return err
		}
		if len(out) != size {
			return fmt.Errorf("gRPC echo answered %d bytes, want %d", len(out), size)
		}
		return nil
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		err := call(1)
		if err == nil {
			return call, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return nil, nil, fmt.Errorf("gRPC echo server did not answer: %v: %s", err, p.out.String())
		}
	}
}
