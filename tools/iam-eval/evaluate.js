// Test-only tool (AGPL-3.0 dependency: never part of a release): evaluates
// simulations with @cloud-copilot/iam-simulate, the pinned version in
// package.json. Reads a JSON array [{id, simulation}] on stdin and writes
// [{id, result, grants, denials, error}] on stdout, where result is
// "Allowed", "ExplicitlyDenied", "ImplicitlyDenied" or "error", and grants
// and denials name the deciding statements ({policy, sid, type}).
'use strict'
const { runSimulation, getGrantReasons, getDenialReasons } = require('@cloud-copilot/iam-simulate')

function statements(list) {
  return list.map((r) => ({
    type: r.policyType,
    policy: r.policyIdentifier || '',
    sid: r.statementId || (r.statementIndex ? '#' + r.statementIndex : ''),
    explicit: r.denialType === 'Explicit'
  }))
}

// iam-simulate 0.1.173 drops a context key whose variable part holds ':'
// (it matches variable keys such as aws:ResourceTag/<k> on '/' only), so
// kms:EncryptionContext:aws:sns:topicArn, which SNS sends to KMS, never
// reaches the conditions on it. When a request carries exactly one such
// key, the key is renamed, in the request and in every policy condition,
// to the action's own template key kms:EncryptionContext:${EncryptionContextKey},
// which it accepts: one key renamed one-to-one, every comparison unchanged.
// More than one such key is refused rather than guessed at.
const encryptionContext = /^kms:encryptioncontext:.+/i
const placeholder = 'kms:EncryptionContext:${EncryptionContextKey}'

function renameKey(policy, from, to) {
  if (!policy) return policy
  const copy = JSON.parse(JSON.stringify(policy))
  for (const st of [copy.Statement].flat()) {
    for (const op of Object.keys((st && st.Condition) || {})) {
      for (const k of Object.keys(st.Condition[op])) {
        if (k.toLowerCase() === from.toLowerCase()) {
          st.Condition[op][to] = st.Condition[op][k]
          delete st.Condition[op][k]
        }
      }
    }
  }
  return copy
}

function renameEncryptionContext(sim) {
  const ctx = sim.request.contextVariables
  const keys = Object.keys(ctx).filter((k) => encryptionContext.test(k))
  if (keys.length === 0) return sim
  if (keys.length > 1) throw new Error('more than one kms:EncryptionContext key: ' + keys.join(', '))
  const from = keys[0]
  const out = JSON.parse(JSON.stringify(sim))
  out.request.contextVariables[placeholder] = ctx[from]
  delete out.request.contextVariables[from]
  out.identityPolicies = out.identityPolicies.map((p) => ({ name: p.name, policy: renameKey(p.policy, from, placeholder) }))
  out.resourcePolicy = renameKey(out.resourcePolicy, from, placeholder)
  return out
}

async function main() {
  let input = ''
  for await (const chunk of process.stdin) input += chunk
  const out = []
  for (const { id, simulation } of JSON.parse(input)) {
    try {
      const res = await runSimulation(renameEncryptionContext(simulation), { simulationMode: 'Strict' })
      if (res.resultType === 'error') {
        out.push({ id, result: 'error', error: JSON.stringify(res.errors) })
        continue
      }
      const analyses = res.resultType === 'single' ? [res.result] : res.results
      const a = analyses[0] && analyses[0].analysis
      out.push({
        id,
        result: res.overallResult,
        grants: a ? statements(getGrantReasons(a)) : [],
        denials: a && res.overallResult !== 'Allowed' ? statements(getDenialReasons(a)) : [],
        ignored: analyses[0] ? analyses[0].ignoredContextKeys || [] : []
      })
    } catch (e) {
      out.push({ id, result: 'error', error: String((e && e.stack) || e) })
    }
  }
  process.stdout.write(JSON.stringify(out))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
