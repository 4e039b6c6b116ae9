# Adds up what cargo test ("test result: ok. 6 passed; 0 failed; 2 ignored; ...") and
# cargo-nextest ("Summary [ 6.9s] 2 tests run: 2 passed, 0 skipped") printed, and prints one
# closing line for the whole run: "N passed, N failed, N skipped".
function count(sep,   k, word) {
  for (k = 2; k <= NF; k++) {
    word = $k; sub(sep "$", "", word)
    if (word == "passed") passed += $(k - 1)
    else if (word == "failed") failed += $(k - 1)
    else if (word == "ignored" || word == "skipped") skipped += $(k - 1)
  }
}
/^test result:/ { count(";") }
/Summary \[/ && /tests run:/ { count(",") }
END { printf "%d passed, %d failed, %d skipped\n", passed, failed, skipped }
