// evring-peers: reference figures for the evring ring (harness.cpp), also reachable as
// `evring bench peers`.
namespace evring::bench {
int evring_peers_main(int argc, char** argv);
}

int main(int argc, char** argv) { return evring::bench::evring_peers_main(argc, argv); }
