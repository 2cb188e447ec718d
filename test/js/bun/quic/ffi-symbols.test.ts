// The runtime's bun:ffi symbol table (src/js/internal/rust-quic/binding.ts) against
// the C headers (quic.h, quic_embed.h): every symbol the runtime binds is
// declared, with the same number of arguments and matching types, so a change
// to the ABI cannot leave the runtime calling a function with a stale signature.
import { FFIType } from "bun:ffi";
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { symbols } from "../../../../src/js/internal/rust-quic/binding";
import { ROOT } from "./harness";

type Decl = { returns: string; args: string[] };

/** The C type of one declarator as an FFI type name. */
function ffiOf(cType: string): string {
  const t = cType.replace(/\b(const|struct|enum)\b/g, " ").replace(/\s+/g, " ").trim();
  if (t.includes("*") || t.includes("(")) return "ptr";
  if (/^unsigned long long\b/.test(t)) return "u64";
  if (/^long long\b/.test(t)) return "i64";
  if (/^unsigned( int)?\b/.test(t)) return "u32";
  if (/^int\b/.test(t)) return "i32";
  if (/^void$/.test(t)) return "void";
  return `C "${t}" (no FFI equivalent)`; // e.g. a struct by value: bun:ffi cannot bind it
}

/** Function declarations of a header: name -> return and argument FFI types. */
function declarations(file: string): Map<string, Decl> {
  const text = readFileSync(join(ROOT, "packages", "bun-usockets", "src", file), "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, " ")
    .replace(/^#.*$/gm, " ");
  const out = new Map<string, Decl>();
  // A function pointer parameter's own parameter list is nested parentheses.
  const decl = /([A-Za-z_][\w\s]*?\**)\s*\b(us_(?:quic|create_quic)_\w+)\s*\(((?:[^()]|\([^()]*\))*)\)\s*;/g;
  for (const m of text.matchAll(decl)) {
    const params = m[3]
      .replace(/\([^()]*\)/g, "()")
      .split(",")
      .map(p => p.trim())
      .filter(p => p && p !== "void");
    // Drop the parameter name: a trailing identifier that is not part of the type.
    const args = params.map(p => ffiOf(p.includes("(") ? "*" : p.replace(/\b\w+$/, m => (/^(int|unsigned|long|char|void)$/.test(m) ? m : ""))));
    out.set(m[2], { returns: ffiOf(m[1]), args });
  }
  return out;
}

const NAMES = new Map<number, string>();
for (const name of ["ptr", "i32", "u32", "u64", "i64", "void"]) NAMES.set((FFIType as any)[name], name);
NAMES.set(FFIType.u64_fast, "u64");
NAMES.set(FFIType.i64_fast, "i64");
const nameOf = (t: unknown) => NAMES.get(t as number) ?? `FFIType ${String(t)}`;

test("every bound symbol is declared in quic.h or quic_embed.h with the same signature", () => {
  const declared = new Map([...declarations("quic.h"), ...declarations("quic_embed.h")]);
  expect(declared.size).toBeGreaterThan(90);
  const mismatches: string[] = [];
  for (const [name, sig] of Object.entries(symbols)) {
    const d = declared.get(name);
    if (!d) {
      mismatches.push(`${name}: not declared`);
      continue;
    }
    const args = ((sig as { args?: readonly unknown[] }).args ?? []).map(nameOf);
    const returns = nameOf((sig as { returns: unknown }).returns);
    if (returns !== d.returns || args.join(",") !== d.args.join(",")) {
      mismatches.push(`${name}: bound (${args.join(", ")}) -> ${returns}, declared (${d.args.join(", ")}) -> ${d.returns}`);
    }
  }
  expect(mismatches).toEqual([]);
});

test("the runtime's shared constants are the headers' and the engine's numbers", async () => {
  const c = await import("../../../../src/js/internal/rust-quic/constants");
  const src = (...p: string[]) => readFileSync(join(ROOT, ...p), "utf8");
  const defines = new Map<string, number>();
  for (const file of ["quic.h", "quic_embed.h", "libusockets.h"]) {
    for (const m of src("packages", "bun-usockets", "src", file).matchAll(/^#define (\w+) (0x[0-9a-fA-F]+|\d+)\b/gm)) defines.set(m[1], Number(m[2]));
  }
  // An out-struct of quic.h is u64 fields only: the engine writes that many into the runtime's array.
  const u64Fields = (struct: string) => {
    const body = src("packages", "bun-usockets", "src", "quic.h").match(new RegExp(`struct ${struct} \\{([^}]*)\\}`))?.[1];
    const fields = body?.replace(/\/\*[\s\S]*?\*\//g, "").split(";").map(f => f.trim()).filter(Boolean);
    return fields?.every(f => /^unsigned long long \w+$/.test(f)) ? fields.length : undefined;
  };
  const codes = new Map<string, bigint>();
  for (const m of src("rust-quic", "src", "http3", "codes.rs").matchAll(/^pub const (\w+): u64 = (0x[0-9a-fA-F_]+|\d+);/gm)) {
    codes.set(m[1], BigInt(m[2].replace(/_/g, "")));
  }
  const expected: Record<string, number | bigint | undefined> = {
    HEADERS_INFORMATIONAL: defines.get("US_QUIC_HEADERS_INFORMATIONAL"),
    HEADERS_INITIAL: defines.get("US_QUIC_HEADERS_INITIAL"),
    HEADERS_TRAILERS: defines.get("US_QUIC_HEADERS_TRAILERS"),
    HEADERS_WEBTRANSPORT: defines.get("US_QUIC_HEADERS_WEBTRANSPORT"),
    LISTEN_REUSE_PORT: defines.get("LIBUS_LISTEN_REUSE_PORT"),
    ECONNREFUSED: 111, // Linux
    CONTEXT_STATS_FIELDS: u64Fields("us_quic_context_stats_t"),
    SOCKET_INFO_FIELDS: u64Fields("us_quic_socket_info_t"),
  };
  for (const name of Object.keys(c)) {
    if (name.startsWith("H3_") || name.startsWith("SETTINGS_")) expected[name] = codes.get(name);
    if (name.startsWith("CLIENT_EVENT_") || name.startsWith("EARLY_DATA_") || name.startsWith("RETRY_")) expected[name] = defines.get(`US_QUIC_${name}`);
  }
  const actual = Object.fromEntries(Object.keys(expected).map(k => [k, (c as Record<string, unknown>)[k]]));
  expect(Object.values(expected).every(v => v !== undefined)).toBe(true);
  expect(actual).toEqual(expected);
});
