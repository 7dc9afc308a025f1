# Functions the bench scripts' awk programs share (they put this file's
# text before their own): a result line's `name=value` field, and the
# median of a space-separated list of numbers (the lower middle of an
# even count).
function field(name,   i, kv) {
    for (i = 1; i <= NF; i++)
        if (index($i, name "=") == 1) { split($i, kv, "="); return kv[2] }
    return ""
}
function median(list,   n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++)
        for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return n ? v[int((n + 1) / 2)] : ""
}
