// evring-bench: the cross-process throughput and latency harness (harness.cpp), also reachable
// as `evring bench throughput|latency`.
namespace evring::bench {
int evring_bench_main(int argc, char** argv);
}

int main(int argc, char** argv) { return evring::bench::evring_bench_main(argc, argv); }
