// Unit tests for evring/codec/status.h: codes, factories, errno mapping, Result<T>.
#include "evring/codec/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <set>
#include <string>

namespace evring {
namespace {

TEST(StatusTest, DefaultIsOkWithEmptyMessage) {
  Status s;
  EXPECT_TRUE(s.is_ok());
  EXPECT_TRUE(static_cast<bool>(s));
  EXPECT_EQ(s.code(), Code::kOk);
  EXPECT_EQ(s.sys_errno(), 0);
  EXPECT_EQ(s.message(), "");
  EXPECT_EQ(s.to_string(), "ok");
  EXPECT_TRUE(Status::ok().is_ok());
}

// The CLI maps codes to exit codes and the C ABI returns them negated: the values are frozen.
TEST(StatusTest, CodeValuesAreStable) {
  EXPECT_EQ(static_cast<int>(Code::kOk), 0);
  EXPECT_EQ(static_cast<int>(Code::kInvalidArgument), 1);
  EXPECT_EQ(static_cast<int>(Code::kNotFound), 2);
  EXPECT_EQ(static_cast<int>(Code::kAlreadyExists), 3);
  EXPECT_EQ(static_cast<int>(Code::kPermissionDenied), 4);
  EXPECT_EQ(static_cast<int>(Code::kLayoutMismatch), 5);
  EXPECT_EQ(static_cast<int>(Code::kCorruption), 6);
  EXPECT_EQ(static_cast<int>(Code::kPayloadTooLarge), 7);
  EXPECT_EQ(static_cast<int>(Code::kUnknownEventType), 8);
  EXPECT_EQ(static_cast<int>(Code::kDomainNotOwned), 9);
  EXPECT_EQ(static_cast<int>(Code::kFull), 10);
  EXPECT_EQ(static_cast<int>(Code::kResourceExhausted), 11);
  EXPECT_EQ(static_cast<int>(Code::kIoError), 12);
  EXPECT_EQ(static_cast<int>(Code::kTimeout), 13);
  EXPECT_EQ(static_cast<int>(Code::kPhiInClear), 14);
  EXPECT_EQ(static_cast<int>(Code::kUnavailable), 15);
}

TEST(StatusTest, EveryCodeHasADistinctName) {
  std::set<std::string> names;
  for (int c = 0; c <= 15; ++c) {
    std::string name(code_name(static_cast<Code>(c)));
    EXPECT_FALSE(name.empty()) << c;
    EXPECT_NE(name, "unknown") << c;
    names.insert(name);
  }
  EXPECT_EQ(names.size(), 16u);
  EXPECT_EQ(code_name(static_cast<Code>(200)), "unknown");
}

TEST(StatusTest, NamedFactoriesCarryTheirCodeAndMessage) {
  struct Case {
    Status s;
    Code code;
  } cases[] = {
      {Status::invalid_argument("m"), Code::kInvalidArgument},
      {Status::not_found("m"), Code::kNotFound},
      {Status::already_exists("m"), Code::kAlreadyExists},
      {Status::permission_denied("m"), Code::kPermissionDenied},
      {Status::layout_mismatch("m"), Code::kLayoutMismatch},
      {Status::corruption("m"), Code::kCorruption},
      {Status::payload_too_large("m"), Code::kPayloadTooLarge},
      {Status::unknown_event_type("m"), Code::kUnknownEventType},
      {Status::domain_not_owned("m"), Code::kDomainNotOwned},
      {Status::full("m"), Code::kFull},
      {Status::resource_exhausted("m"), Code::kResourceExhausted},
      {Status::timeout("m"), Code::kTimeout},
      {Status::unavailable("m"), Code::kUnavailable},
  };
  for (const auto& c : cases) {
    EXPECT_FALSE(c.s.is_ok());
    EXPECT_FALSE(static_cast<bool>(c.s));
    EXPECT_EQ(c.s.code(), c.code);
    EXPECT_EQ(c.s.message(), "m");
    EXPECT_EQ(c.s.sys_errno(), 0);
    EXPECT_EQ(c.s.to_string(), std::string(code_name(c.code)) + ": m");
  }
}

TEST(StatusTest, FromErrnoMapsToTheClosestCodeAndKeepsErrno) {
  struct Case {
    int err;
    Code code;
  } cases[] = {
      {EACCES, Code::kPermissionDenied}, {EPERM, Code::kPermissionDenied},
      {ENOENT, Code::kNotFound},         {EEXIST, Code::kAlreadyExists},
      {EINVAL, Code::kInvalidArgument},  {ENAMETOOLONG, Code::kInvalidArgument},
      {ENOMEM, Code::kResourceExhausted}, {ENOSPC, Code::kResourceExhausted},
      {ETIMEDOUT, Code::kTimeout},       {EIO, Code::kIoError},
      {EBADF, Code::kIoError},
  };
  for (const auto& c : cases) {
    Status s = Status::from_errno(c.err, "opening thing");
    EXPECT_EQ(s.code(), c.code) << std::strerror(c.err);
    EXPECT_EQ(s.sys_errno(), c.err);
    EXPECT_EQ(s.message(), std::string("opening thing: ") + std::strerror(c.err));
  }
}

TEST(StatusTest, ExplicitConstructorKeepsErrno) {
  Status s(Code::kNotFound, "bus 'x' does not exist", ENOENT);
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.sys_errno(), ENOENT);
  EXPECT_EQ(s.to_string(), "not found: bus 'x' does not exist");
}

TEST(ResultTest, HoldsAValue) {
  Result<int> r(42);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  EXPECT_TRUE(r.status().is_ok());
}

TEST(ResultTest, HoldsAnErrorStatus) {
  Result<int> r(Status::not_found("nothing here"));
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.status().code(), Code::kNotFound);
  EXPECT_EQ(r.status().message(), "nothing here");
}

TEST(ResultTest, MovesOutMoveOnlyValuesAndGivesMemberAccess) {
  Result<std::unique_ptr<std::string>> r(std::make_unique<std::string>("abc"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->size(), 3u);
  EXPECT_EQ(r->get()->size(), 3u);
  std::unique_ptr<std::string> v = std::move(r).value();
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(*v, "abc");
}

Status fails_then_never_reaches(bool* reached) {
  EVRING_RETURN_IF_ERROR(Status::timeout("slow"));
  *reached = true;
  return Status::ok();
}
Status passes_through(bool* reached) {
  EVRING_RETURN_IF_ERROR(Status::ok());
  *reached = true;
  return Status::corruption("after");
}

TEST(StatusTest, ReturnIfErrorPropagatesOnlyErrors) {
  bool reached = false;
  Status s = fails_then_never_reaches(&reached);
  EXPECT_EQ(s.code(), Code::kTimeout);
  EXPECT_FALSE(reached);
  s = passes_through(&reached);
  EXPECT_TRUE(reached);
  EXPECT_EQ(s.code(), Code::kCorruption);
}

}  // namespace
}  // namespace evring
