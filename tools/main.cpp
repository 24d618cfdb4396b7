// evring: the command line tool. main() only dispatches: each verb group lives in its own file
// (verb_admin.cpp, verb_publish.cpp, verb_tail.cpp). Nothing escapes main: every error ends as
// one `evring: ...` line on stderr and a documented exit code (cli_common.h, tools/README.md).
#include <mimalloc.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <new>
#include <string>

#include "cli_common.h"

namespace evring::cli {
void add_inspect_verb(CLI::App& app, VerbList& verbs);  // verb_inspect.cpp
void add_top_verb(CLI::App& app, VerbList& verbs);      // verb_top.cpp
void add_bench_verb(CLI::App& app, VerbList& verbs);    // verb_bench.cpp
void add_exporter_verb(CLI::App& app, VerbList& verbs); // verb_exporter.cpp
}  // namespace evring::cli

namespace {

std::string version_text() {
  const int mi = mi_version();  // also keeps libmimalloc linked: it is the tool's allocator
  return "evring 0.1.0 (mimalloc " + std::to_string(mi / 100) + "." +
         std::to_string(mi / 10 % 10) + "." + std::to_string(mi % 10) + ")";
}

int run(int argc, char** argv) {
  using namespace evring::cli;
  CLI::App app{"evring: create, inspect and use evring shared-memory event buses", "evring"};
  app.footer(kExitCodeHelp);
  app.set_version_flag("--version", version_text());
  app.require_subcommand(1);
  app.fallthrough(false);

  VerbList verbs;
  add_admin_verbs(app, verbs);
  add_publish_verb(app, verbs);
  add_tail_verb(app, verbs);
  add_inspect_verb(app, verbs);
  add_top_verb(app, verbs);
  add_bench_verb(app, verbs);
  add_exporter_verb(app, verbs);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --version
      app.exit(e);
      return kExitOk;
    }
    print_error(e.what());
    return kExitUsage;
  }
  for (const Verb& verb : verbs)
    if (verb.command->parsed()) return verb.run();
  print_error("no verb given (see evring --help)");
  return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::bad_alloc&) {
    evring::cli::print_error("internal error: out of memory");
  } catch (const std::exception& e) {
    evring::cli::print_error(std::string("internal error: ") + e.what());
  } catch (...) {
    evring::cli::print_error("internal error: unknown exception");
  }
  return evring::cli::kExitInternal;
}
