/**
 * Child process of the forward scenarios: a loopback node:http receiver that drains each body and answers
 * 200. Prints `listening <port>` once ready; on SIGTERM prints `received <requests> <connections> <cpuUs>` (its own
 * CPU time since listening, user + system) and exits.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

let received = 0
let connections = 0
const server = createServer((req, res) => {
  req.resume()
  req.on('end', () => { received++; res.writeHead(200, { 'content-type': 'text/plain' }); res.end('ok') })
})
server.keepAliveTimeout = 30_000
server.on('connection', () => { connections++ })
let cpuAtListen = process.cpuUsage()
server.listen(0, '127.0.0.1', () => {
  cpuAtListen = process.cpuUsage()
  console.log(`listening ${(server.address() as AddressInfo).port}`)
})
process.once('SIGTERM', () => {
  const cpu = process.cpuUsage(cpuAtListen)
  console.log(`received ${received} ${connections} ${cpu.user + cpu.system}`)
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
