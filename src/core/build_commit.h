// The commit this binary was built from (short hash, "-dirty" when src/ or apps/ had uncommitted
// changes, "unknown" outside a git checkout). Generated at build time by cmake/build_commit.cmake,
// so results record the code that produced them even when the checkout has moved on since.
#pragma once

namespace pconv {

const char* build_commit();

}  // namespace pconv
