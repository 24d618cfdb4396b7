#include "evring/shm/bus.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>

#include "evring/codec/names.h"
#include "evring/shm/process.h"

namespace bip = boost::interprocess;

namespace evring {
namespace {

// A bus not ready this long after its creation never will be (Bus::open): create() fills the
// header in microseconds and formats the ring in milliseconds (the prefault before it runs while
// the magic is still zero, so openers are refused as "not an evring segment" then).
constexpr std::uint64_t kReadyWaitAfterCreateNs = 2'000'000'000;

constexpr std::string_view kObjectPrefix = "evring.";
constexpr std::size_t kMaxBusNameBytes = 48;

std::size_t align_up(std::size_t v, std::size_t a) { return (v + a - 1) / a * a; }

std::string object_name(std::string_view bus) { return std::string(kObjectPrefix) + std::string(bus); }

void copy_cstr(char* dst, std::size_t cap, std::string_view src) {
  std::size_t n = std::min(src.size(), cap - 1);
  std::memcpy(dst, src.data(), n);
  std::memset(dst + n, 0, cap - n);
}

struct Layout {
  std::size_t producers, consumers, types, idempotency, ring, ring_bytes, total;
};

Layout layout_of(const BusOptions& o) {
  Layout l;
  l.producers = shm::kSegmentHeaderBytes;
  l.consumers = l.producers + std::size_t{o.max_producers} * sizeof(shm::ProducerEntry);
  l.types = l.consumers + std::size_t{o.ring.max_consumers} * sizeof(shm::ConsumerEntry);
  l.idempotency = align_up(l.types + std::size_t{o.max_types} * sizeof(shm::TypeEntry), 64);
  l.ring = align_up(l.idempotency + std::size_t{o.ring.max_consumers} *
                                        shm::idempotency_table_bytes(o.idempotency_keys),
                    4096);
  l.ring_bytes = core::ring_region_bytes(o.ring);
  l.total = align_up(l.ring + l.ring_bytes, 4096);
  return l;
}

Status status_from_boost(const bip::interprocess_exception& e, std::string_view bus,
                         std::string_view what) {
  int err = e.get_native_error();
  std::string ctx = std::string(what) + " bus '" + std::string(bus) + "'";
  if (err == 0) {
    switch (e.get_error_code()) {
      case bip::not_found_error: err = ENOENT; break;
      case bip::already_exists_error: err = EEXIST; break;
      case bip::security_error: err = EACCES; break;
      default: err = EIO; break;
    }
  }
  if (err == ENOENT) return Status(Code::kNotFound, "bus '" + std::string(bus) + "' does not exist", err);
  if (err == EEXIST) return Status(Code::kAlreadyExists, "bus '" + std::string(bus) + "' already exists", err);
  if (err == EACCES || err == EPERM)
    return Status(Code::kPermissionDenied, "permission denied: " + ctx, err);
  return Status::from_errno(err, ctx);
}

// The magic and layout versions at the start of an existing segment (they never move: every
// layout keeps them first). ok() false when the object cannot be read or is too short.
struct SegmentVersions {
  bool readable = false;
  bool evring = false;  // the magic matched
  std::uint32_t layout = 0, ring_layout = 0;
};
SegmentVersions peek_versions(std::string_view name) {
  SegmentVersions v;
  const int fd = ::open(Bus::object_path(name).c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return v;
  unsigned char head[16];
  const ssize_t n = ::pread(fd, head, sizeof head, 0);
  ::close(fd);
  if (n != static_cast<ssize_t>(sizeof head)) return v;
  v.readable = true;
  std::uint64_t magic;
  std::memcpy(&magic, head, 8);
  std::memcpy(&v.layout, head + 8, 4);
  std::memcpy(&v.ring_layout, head + 12, 4);
  v.evring = magic == shm::kSegmentMagic;
  return v;
}

// A bus of another layout version (left by an older or newer evring) cannot be reused or
// repaired: say so, with both versions and the way out, instead of a bare "already exists".
Status refuse_existing(std::string_view name, const Status& exists) {
  const SegmentVersions v = peek_versions(name);
  const std::string who = "bus '" + std::string(name) + "'";
  const std::string remove = "; remove it with `evring rm " + std::string(name) + "`";
  if (!v.readable || !v.evring) return exists;
  if (v.layout != shm::kSegmentLayoutVersion)
    return Status::layout_mismatch(
        who + " already exists with segment layout version " + std::to_string(v.layout) +
        " (this build creates version " + std::to_string(shm::kSegmentLayoutVersion) +
        "): a bus of another evring build" + remove);
  if (v.ring_layout != core::kRingLayoutVersion)
    return Status::layout_mismatch(
        who + " already exists with ring layout version " + std::to_string(v.ring_layout) +
        " (this build creates version " + std::to_string(core::kRingLayoutVersion) +
        "): a bus of another evring build" + remove);
  return exists;
}

// Asks for transparent huge pages on the new segment before its pages are first touched.
Status advise_huge_pages(std::byte* base, std::size_t size, std::string_view name) {
  const std::string setting = Bus::shmem_huge_pages_setting();
  if (setting == "never" || setting == "deny" || setting == "unavailable")
    return Status::unavailable(
        "huge pages refused for bus '" + std::string(name) +
        "': transparent huge pages for shared memory are off "
        "(/sys/kernel/mm/transparent_hugepage/shmem_enabled is '" + setting +
        "'; 'advise', 'within_size' or 'always' allows them)");
  if (madvise(base, size, MADV_HUGEPAGE) != 0)
    return Status::from_errno(errno, "madvise(MADV_HUGEPAGE) on bus '" + std::string(name) + "'");
  return Status::ok();
}

// Fills this process's page tables for the whole mapping now, so that no publish or poll pays a
// first-touch fault later (create() prefaults the memory itself; every other process maps it
// afresh). MADV_POPULATE_* needs Linux 5.14; before that, touch one byte per page.
void populate(std::byte* base, std::size_t size, bool writable) {
#if defined(MADV_POPULATE_WRITE)
  if (madvise(base, size, writable ? MADV_POPULATE_WRITE : MADV_POPULATE_READ) == 0) return;
#endif
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  for (std::size_t off = 0; off < size; off += page)
    (void)*static_cast<volatile const std::byte*>(base + off);
}

}  // namespace

std::string Bus::shmem_huge_pages_setting() {
  std::FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/shmem_enabled", "r");
  if (!f) return "unavailable";
  char line[256] = {};
  const bool read = std::fgets(line, sizeof line, f) != nullptr;
  std::fclose(f);
  const char* open = read ? std::strchr(line, '[') : nullptr;
  const char* close = open ? std::strchr(open, ']') : nullptr;
  return close ? std::string(open + 1, close) : "unavailable";
}

struct Bus::Mapping {
  bip::shared_memory_object object;
  bip::mapped_region region;
};

Status Bus::validate_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxBusNameBytes)
    return Status::invalid_argument("bus name '" + std::string(name) + "' must be 1.." +
                                    std::to_string(kMaxBusNameBytes) + " characters");
  if (name[0] == '.' || name[0] == '-')
    return Status::invalid_argument("bus name '" + std::string(name) +
                                    "' must not start with '.' or '-'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.';
    if (!ok)
      return Status::invalid_argument("bus name '" + std::string(name) + "' contains '" +
                                      std::string(1, c) + "' (allowed: A-Z a-z 0-9 _ - .)");
  }
  return Status::ok();
}

std::string Bus::object_path(std::string_view name) { return "/dev/shm/" + object_name(name); }

Bus::~Bus() = default;

Result<std::shared_ptr<Bus>> Bus::create(std::string_view name, const BusOptions& options) {
  EVRING_RETURN_IF_ERROR(validate_name(name));
  EVRING_RETURN_IF_ERROR(core::validate_config(core::normalized(options.ring)));
  if (options.max_producers == 0 || options.max_producers > 65535)
    return Status::invalid_argument("max producers must be 1..65535");
  if (options.max_types == 0 || options.max_types > 65535)
    return Status::invalid_argument("max event types must be 1..65535");
  if (options.idempotency_keys != 0 &&
      (options.idempotency_keys & (options.idempotency_keys - 1)) != 0)
    return Status::invalid_argument("idempotency keys per consumer must be a power of two or 0, got " +
                                    std::to_string(options.idempotency_keys));
  if (options.idempotency_keys > (1u << 20))
    return Status::invalid_argument("idempotency keys per consumer must be at most 1048576");
  if (options.mode & ~0777u)
    return Status::invalid_argument("mode must be an octal permission like 0600 or 0660");
  const Layout l = layout_of(options);
  auto mapped = map(name, Access::kReadWrite, true, l.total, options.mode);
  if (!mapped.ok()) {
    if (mapped.status().code() == Code::kAlreadyExists) return refuse_existing(name, mapped.status());
    return mapped.status();
  }
  std::shared_ptr<Bus> bus = std::move(mapped.value());
  if (options.huge_pages) {
    if (Status s = advise_huge_pages(bus->base_, bus->size_, name); !s.is_ok()) {
      bus.reset();
      (void)remove(name);  // refused: nothing is left behind
      return s;
    }
  }
  if (options.prefault) std::memset(bus->base_, 0, bus->size_);  // fault every page in now

  shm::SegmentHeader& h = *bus->header_;
  h.magic = shm::kSegmentMagic;
  h.layout_version = shm::kSegmentLayoutVersion;
  h.ring_layout_version = core::kRingLayoutVersion;
  h.segment_bytes = l.total;
  h.header_bytes = shm::kSegmentHeaderBytes;
  h.created_unix_ns = unix_now_ns();
  h.creator_pid = static_cast<std::uint32_t>(getpid());
  h.mode = options.mode;
  h.creator_start_time = shm::self_start_time();
  h.max_producers = options.max_producers;
  h.max_consumers = options.ring.max_consumers;
  h.max_types = options.max_types;
  h.producers_offset = l.producers;
  h.consumers_offset = l.consumers;
  h.types_offset = l.types;
  h.ring_offset = l.ring;
  h.ring_bytes = l.ring_bytes;
  h.idempotency_offset = l.idempotency;
  h.idempotency_keys = options.idempotency_keys;
  h.consumer_grace_ms = options.consumer_grace_ms;
  copy_cstr(h.bus_name, sizeof h.bus_name, name);

  int rc = shm::init_registry_mutex(h.registry_mutex);
  if (rc != 0) {
    bus.reset();
    (void)remove(name);
    return Status::from_errno(rc, "initialising the registry mutex of bus '" + std::string(name) + "'");
  }
  bus->ring_ = core::RingRegion::format(std::span(bus->base_ + l.ring, l.ring_bytes), options.ring);
  // SYNC POINT: release publishes the whole initialised segment to open(), which acquires it.
  h.ready.store(1, std::memory_order_release);
  return bus;
}

Result<std::shared_ptr<Bus>> Bus::map(std::string_view name, Access access, bool creating,
                                      std::size_t create_bytes, mode_t mode) {
  std::shared_ptr<Bus> bus(new Bus());
  bus->name_ = std::string(name);
  bus->read_only_ = access == Access::kReadOnly;
  bus->mapping_ = std::make_unique<Mapping>();
  const std::string obj = object_name(name);
  const bip::mode_t bmode = bus->read_only_ ? bip::read_only : bip::read_write;
  try {
    if (creating) {
      bip::permissions perm;
      perm.set_permissions(static_cast<unsigned>(mode));
      bus->mapping_->object = bip::shared_memory_object(bip::create_only, obj.c_str(), bmode, perm);
      try {
        bus->mapping_->object.truncate(static_cast<bip::offset_t>(create_bytes));
      } catch (...) {
        bip::shared_memory_object::remove(obj.c_str());
        throw;
      }
    } else {
      bus->mapping_->object = bip::shared_memory_object(bip::open_only, obj.c_str(), bmode);
    }
    bip::offset_t size = 0;
    bus->mapping_->object.get_size(size);
    if (size == 0) {
      return Status(Code::kUnavailable,
                    "bus '" + std::string(name) + "' has size 0 (being created, or its creator died)");
    }
    bus->mapping_->region = bip::mapped_region(bus->mapping_->object, bmode);
  } catch (const bip::interprocess_exception& e) {
    if (creating && e.get_error_code() != bip::already_exists_error)
      bip::shared_memory_object::remove(obj.c_str());
    return status_from_boost(e, name, creating ? "creating" : "opening");
  }
  bus->base_ = static_cast<std::byte*>(bus->mapping_->region.get_address());
  bus->size_ = bus->mapping_->region.get_size();
  bus->header_ = reinterpret_cast<shm::SegmentHeader*>(bus->base_);
  return bus;
}

Result<std::shared_ptr<Bus>> Bus::open(std::string_view name, Access access) {
  EVRING_RETURN_IF_ERROR(validate_name(name));
  auto mapped = map(name, access, false, 0, 0);
  if (!mapped.ok()) return mapped.status();
  std::shared_ptr<Bus> bus = std::move(mapped.value());
  const std::string who = "bus '" + std::string(name) + "'";
  if (bus->size_ < shm::kSegmentHeaderBytes)
    return Status::corruption(who + " is " + std::to_string(bus->size_) +
                              " bytes, smaller than a segment header");
  const shm::SegmentHeader& h = *bus->header_;
  if (h.magic != shm::kSegmentMagic)
    return Status::layout_mismatch(who + " is not an evring segment (bad magic)");
  if (h.layout_version != shm::kSegmentLayoutVersion ||
      h.ring_layout_version != core::kRingLayoutVersion)
    return Status::layout_mismatch(
        who + " has segment layout " + std::to_string(h.layout_version) + "/ring layout " +
        std::to_string(h.ring_layout_version) + "; this build reads " +
        std::to_string(shm::kSegmentLayoutVersion) + "/" + std::to_string(core::kRingLayoutVersion));
  // SYNC POINT: acquire pairs with create()'s release of ready.
  // A creator fills the header in microseconds and formats the ring in milliseconds: wait up to a
  // second for ready, but not for a bus that will never be ready: its creator is gone (it died
  // mid-create), or it was created more than 2 s ago (a stuck creator or a scribbled word; the
  // segment fuzzer's inputs used to pay two seconds each here). Until create() has written
  // creator_pid and its start time, they read 0: not a verdict. Looked at every 100 ms (the
  // liveness check reads /proc).
  auto never_ready = [&]() -> std::string {
    const std::uint64_t created = h.created_unix_ns, now = unix_now_ns();
    if (h.creator_pid != 0 && h.creator_start_time != 0 &&
        !shm::process_alive(static_cast<pid_t>(h.creator_pid), h.creator_start_time))
      return who + " is not initialised and its creator (pid " + std::to_string(h.creator_pid) +
             ") is gone";
    if (created != 0 && now > created + kReadyWaitAfterCreateNs)
      return who + " is not initialised " + std::to_string((now - created) / 1'000'000'000) +
             " s after its creation (a stuck creator or a corrupt segment)";
    if (created > now + kReadyWaitAfterCreateNs)  // beyond any clock skew between processes
      return who + " is not initialised and its creation time is " +
             std::to_string((created - now) / 1'000'000'000) +
             " s in the future (a corrupt segment)";
    return {};
  };
  for (int i = 0; h.ready.load(std::memory_order_acquire) != 1; ++i) {
    if (i % 100 == 0)
      if (std::string why = never_ready(); !why.empty()) return Status::unavailable(why);
    if (i >= 1000) return Status::unavailable(who + " is not initialised (its creator may have died)");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  if (h.segment_bytes != bus->size_)
    return Status::corruption(who + " header says " + std::to_string(h.segment_bytes) +
                              " bytes but the segment has " + std::to_string(bus->size_));
  auto in_bounds = [&](std::uint64_t off, std::uint64_t count, std::size_t entry) {
    return off >= shm::kSegmentHeaderBytes && count <= 65535 && off <= bus->size_ &&
           count * entry <= bus->size_ - off;
  };
  if (!in_bounds(h.producers_offset, h.max_producers, sizeof(shm::ProducerEntry)) ||
      !in_bounds(h.consumers_offset, h.max_consumers, sizeof(shm::ConsumerEntry)) ||
      !in_bounds(h.types_offset, h.max_types, sizeof(shm::TypeEntry)) ||
      !in_bounds(h.ring_offset, 1, h.ring_bytes) || h.ring_offset % 64 != 0 ||
      h.producers_offset % 64 != 0 || h.consumers_offset % 64 != 0 ||  // entries hold atomics
      h.types_offset % alignof(shm::TypeEntry) != 0 ||  // read as TypeEntry (fuzz: misaligned)
      h.idempotency_keys > (1u << 20) ||
      !in_bounds(h.idempotency_offset, h.max_consumers,
                 shm::idempotency_table_bytes(h.idempotency_keys)) ||
      h.idempotency_offset % 64 != 0)
    return Status::corruption(who + " has registry or ring offsets outside the segment or misaligned");
  auto ring = core::RingRegion::attach(std::span(bus->base_ + h.ring_offset, h.ring_bytes));
  if (!ring.ok()) return Status::corruption(who + ": " + ring.status().message());
  if (ring->config().max_consumers != h.max_consumers)
    return Status::corruption(who + " consumer registry and ring disagree on max consumers");
  bus->ring_ = ring.value();
  populate(bus->base_, bus->size_, access == Access::kReadWrite);
  return bus;
}

Status Bus::remove(std::string_view name) {
  EVRING_RETURN_IF_ERROR(validate_name(name));
  std::string obj = "/";
  obj += object_name(name);
  if (::shm_unlink(obj.c_str()) != 0) {
    int err = errno;
    if (err == ENOENT) return Status(Code::kNotFound, "bus '" + std::string(name) + "' does not exist", err);
    if (err == EACCES || err == EPERM)
      return Status(Code::kPermissionDenied, "permission denied: removing bus '" + std::string(name) + "'", err);
    return Status::from_errno(err, "removing bus '" + std::string(name) + "'");
  }
  return Status::ok();
}

std::vector<BusSummary> Bus::list() {
  std::vector<BusSummary> out;
  DIR* dir = ::opendir("/dev/shm");
  if (!dir) return out;
  while (dirent* e = ::readdir(dir)) {
    std::string_view file = e->d_name;
    if (file.substr(0, kObjectPrefix.size()) != kObjectPrefix) continue;
    BusSummary s;
    s.name = std::string(file.substr(kObjectPrefix.size()));
    s.path = "/dev/shm/" + std::string(file);
    struct stat st {};
    if (::stat(s.path.c_str(), &st) == 0) s.bytes = static_cast<std::uint64_t>(st.st_size);
    auto bus = open(s.name, Access::kReadOnly);
    if (const SegmentVersions v = peek_versions(s.name); v.evring) s.layout_version = v.layout;
    if (!bus.ok()) {
      s.status = bus.status();
    } else {
      const auto& h = (*bus)->header();
      s.ring = (*bus)->ring().config();
      s.creator_pid = static_cast<pid_t>(h.creator_pid);
      s.creator_alive = shm::process_alive(s.creator_pid, h.creator_start_time);
      for (const auto& p : (*bus)->producers()) s.live_members += p.alive;
      for (const auto& c : (*bus)->consumers()) s.live_members += c.alive && c.attached;
    }
    out.push_back(std::move(s));
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

std::span<std::byte> Bus::idempotency_table(std::uint32_t index) const {
  std::size_t bytes = shm::idempotency_table_bytes(header_->idempotency_keys);
  if (bytes == 0 || index >= header_->max_consumers) return {};
  return {base_ + header_->idempotency_offset + std::size_t{index} * bytes, bytes};
}

namespace shm {

int init_registry_mutex(pthread_mutex_t& m) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  const int rc = pthread_mutex_init(&m, &attr);
  pthread_mutexattr_destroy(&attr);
  return rc;
}

int expected_registry_mutex_kind() {
  static const int kind = [] {
    pthread_mutex_t local;
    if (init_registry_mutex(local) != 0) return -1;
    const int k = local.__data.__kind;
    pthread_mutex_destroy(&local);
    return k;
  }();
  return kind;
}

int registry_mutex_kind(const SegmentHeader& h) {
  // Relaxed, as glibc reads it: the kind is written once by create(), before ready's release.
  return std::atomic_ref<int>(const_cast<int&>(h.registry_mutex.__data.__kind))
      .load(std::memory_order_relaxed);
}

}  // namespace shm

Status Bus::lock_registry() const {
  if (read_only_) return Status::permission_denied("bus '" + name_ + "' is open read-only");
  // Timed: a scribbled mutex word could otherwise block us forever. Registry updates take
  // microseconds, so two seconds means a stuck or corrupt segment, never contention.
  timespec deadline{};
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += 2;
  if (const int kind = shm::registry_mutex_kind(*header_);
      kind != shm::expected_registry_mutex_kind())
    return Status::corruption("the registry lock of bus '" + name_ +
                              "' is corrupt (its kind word is " + std::to_string(kind) + ", not " +
                              std::to_string(shm::expected_registry_mutex_kind()) +
                              "): registry updates are refused; recreate the bus");
  int rc = pthread_mutex_timedlock(&header_->registry_mutex, &deadline);
  if (rc == ETIMEDOUT)
    return Status::timeout("the registry lock of bus '" + name_ +
                           "' was held for more than 2 s (a stuck process or a corrupt segment)");
  if (rc == EOWNERDEAD) {
    // The previous owner died inside a registry update. Entries are published by their state
    // word last, so a half-written entry is still free: the registry is consistent.
    pthread_mutex_consistent(&header_->registry_mutex);
    rc = 0;
  }
  if (rc != 0) return Status::from_errno(rc, "locking the registry of bus '" + name_ + "'");
  return Status::ok();
}

void Bus::unlock_registry() const { pthread_mutex_unlock(&header_->registry_mutex); }

shm::ProducerEntry& Bus::producer_entry(std::uint32_t i) const {
  return reinterpret_cast<shm::ProducerEntry*>(base_ + header_->producers_offset)[i];
}
shm::ConsumerEntry& Bus::consumer_entry(std::uint32_t i) const {
  return reinterpret_cast<shm::ConsumerEntry*>(base_ + header_->consumers_offset)[i];
}
shm::TypeEntry& Bus::type_entry(std::uint32_t i) const {
  return reinterpret_cast<shm::TypeEntry*>(base_ + header_->types_offset)[i];
}

}  // namespace evring
